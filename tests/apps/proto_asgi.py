"""ASGI app for the protocol tests (HTTP/2, TLS, Unix sockets, pathsend).

GET /hello                        -> "hello" (for h2load)
GET /stream?key=K&n=N&delay=S     -> N chunks "chunk I\n", one every S seconds (n absent: until the
                                     client goes away). Prints "proto-disconnect K" when the app
                                     receives http.disconnect before its response is complete, and
                                     "proto-complete K N" once the whole response was sent. The
                                     response has x-client-port (the scope's client port), so that a
                                     test can tell whether two requests shared a connection.
POST /digest                      -> {"length": N, "sha256": HEX} of the request body
GET /pathsend?path=P              -> http.response.start (200, content-type) then
                                     http.response.pathsend with path P (as given, even relative)
anything else                     -> the scope as JSON (bytes decoded as latin-1, tuples as lists)
websocket                         -> accept, send the scope as JSON text, close 1000
"""

import asyncio
import hashlib
import json
import sys
from urllib.parse import parse_qs


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _say(text):
    print(text, flush=True)


async def _drain(receive):
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def _stream(scope, receive, send, query):
    key = query.get("key", ["?"])[0]
    n = int(query["n"][0]) if "n" in query else None
    delay = float(query.get("delay", ["0.05"])[0])
    if await _drain(receive) is None:
        _say(f"proto-disconnect {key}")
        return
    disconnected = asyncio.Event()
    state = {"complete": False}

    async def watch():
        message = await receive()
        if message["type"] == "http.disconnect" and not state["complete"]:
            _say(f"proto-disconnect {key}")
            disconnected.set()

    watcher = asyncio.create_task(watch())
    client_port = str(scope["client"][1]) if scope.get("client") else "none"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-client-port", client_port.encode())]})
    sent = 0
    try:
        while (n is None or sent < n) and not disconnected.is_set():
            await send({"type": "http.response.body", "body": b"chunk %d\n" % sent, "more_body": True})
            sent += 1
            try:
                await asyncio.wait_for(disconnected.wait(), delay)
            except asyncio.TimeoutError:
                pass
        if not disconnected.is_set():
            state["complete"] = True
            watcher.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            _say(f"proto-complete {key} {sent}")
    except Exception as e:  # a send after the client left may raise (ASGI allows OSError)
        _say(f"proto-send-error {key} {type(e).__name__}: {e}")
    finally:
        watcher.cancel()


async def _pathsend(scope, receive, send, query):
    await _drain(receive)
    path = query.get("path", [""])[0]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.pathsend", "path": path})


async def _echo(scope, receive, send):
    body = await _drain(receive) or b""
    data = json.dumps({"scope": _plain(scope), "body": body.decode("latin-1")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _websocket(scope, receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps({"scope": _plain(scope)})})
    await send({"type": "websocket.close", "code": 1000})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    query = parse_qs(scope["query_string"].decode("latin-1"))
    path = scope["path"]
    if path == "/hello":
        await _drain(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})
    elif path == "/stream":
        await _stream(scope, receive, send, query)
    elif path == "/digest":
        body = await _drain(receive) or b""
        data = json.dumps({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
    elif path == "/pathsend":
        await _pathsend(scope, receive, send, query)
    else:
        await _echo(scope, receive, send)
