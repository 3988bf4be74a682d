"""The ASGI app bench/soak.py drives: every kind of traffic a long-running server sees.

GET  /hello                 "Hello, world!" (keep-alive and new connections)
POST /upload                reads the body as it comes; answers "<length> <sha256>"
GET  /stream?n=N&size=S     N chunks of S bytes, each sent as the app produces it
WS   /ws                    echoes every message, text or bytes
"""

import asyncio
import hashlib
from urllib.parse import parse_qs

TEXT = [(b"content-type", b"text/plain")]


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["type"] == "http":
        path = scope["path"]
        if path == "/upload":
            await upload(receive, send)
        elif path == "/stream":
            q = parse_qs(scope["query_string"].decode())
            await stream(send, int(q["n"][0]), int(q["size"][0]))
        else:
            await send({"type": "http.response.start", "status": 200, "headers": TEXT})
            await send({"type": "http.response.body", "body": b"Hello, world!"})


async def upload(receive, send):
    digest = hashlib.sha256()
    length = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        digest.update(chunk)
        length += len(chunk)
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    await send({"type": "http.response.body", "body": f"{length} {digest.hexdigest()}".encode()})


async def stream(send, n, size):
    await send({"type": "http.response.start", "status": 200, "headers": TEXT})
    chunk = b"s" * size
    for _ in range(n):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b""})


async def echo(receive, send):
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            return
