"""The ASGI app of the benchmark suite (bench/suite.py), served by every ASGI server in it.

Routes, the same in bench_wsgi.py, bench_rsgi.py and bench/kestrel_hello:
  /b10 /b1k /b10k /b100k   GET: 10 B, 1 KiB, 10 KiB, 100 KiB of "x"
  /echo                    POST: the request body back
  /json                    GET: {"message": "Hello, world!"}, serialised per request
  /io10 /io100             GET: 10 B after awaiting 10 ms / 100 ms (asyncio.sleep: simulated I/O)
  /file                    GET: the file named by $BENCH_FILE, by `http.response.pathsend` when the
                           server offers it, else read and sent as the body (what a framework does)
  /ws                      WebSocket: every message echoed back as it came (bytes or text)
Every response carries its Content-Length, as a framework's would.

`reading_app` is `app` for hypercorn 0.13 (Debian 12's), which keeps a connection alive only if the
app has read the request: it reads the request's first message before the route runs.
"""

import asyncio
import json
import os

FILE = os.environ.get("BENCH_FILE", "")


def plain(body, content_type=b"text/plain"):
    return {"type": "http.response.start", "status": 200,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]}


def fixed(size):
    body = b"x" * size
    start = plain(body)
    message = {"type": "http.response.body", "body": body}

    async def route(scope, receive, send):
        await send(start)
        await send(message)

    return route


async def echo(scope, receive, send):
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    await send(plain(body, b"application/octet-stream"))
    await send({"type": "http.response.body", "body": body})


async def json_route(scope, receive, send):
    body = json.dumps({"message": "Hello, world!"}).encode()
    await send(plain(body, b"application/json"))
    await send({"type": "http.response.body", "body": body})


def sleeping(ms):
    seconds = ms / 1000
    body = b"x" * 10

    async def route(scope, receive, send):
        await asyncio.sleep(seconds)
        await send(plain(body))
        await send({"type": "http.response.body", "body": body})

    return route


async def file_route(scope, receive, send):
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(os.path.getsize(FILE)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": FILE})
    else:
        with open(FILE, "rb") as f:
            await send({"type": "http.response.body", "body": f.read()})


async def not_found(scope, receive, send):
    await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def websocket_echo(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
            else:
                await send({"type": "websocket.send", "text": message["text"]})
        else:
            return


ROUTES = {
    "/b10": fixed(10), "/b1k": fixed(1024), "/b10k": fixed(10 * 1024), "/b100k": fixed(100 * 1024),
    "/echo": echo, "/json": json_route, "/io10": sleeping(10), "/io100": sleeping(100), "/file": file_route,
}


async def app(scope, receive, send):
    if scope["type"] == "http":
        await ROUTES.get(scope["path"], not_found)(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket_echo(scope, receive, send)
    elif scope["type"] == "lifespan":
        await receive()                                     # lifespan.startup
        await send({"type": "lifespan.startup.complete"})
        await receive()                                     # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})


async def reading_app(scope, receive, send):
    if scope["type"] != "http":
        return await app(scope, receive, send)
    first = await receive()
    replayed = False

    async def replay():                                     # `first` again, then the rest of the body
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return first

    await app(scope, replay, send)
