"""Raw ASGI app for the websocket tests: one websocket route per behaviour, plus HTTP routes.

Every websocket handler records what it received under the test's `key` (query string): GET
/seen?key=K returns that list as JSON (one worker, so the record is shared). Disconnects are also
printed to stdout as `WS DISCONNECT <key> <code> <reason>` (flushed), for the tests to wait on.

Websocket routes:
  /echo              accept, then echo every message (text as text, bytes as bytes) until disconnect
  /scope...          accept, send the scope as JSON text (bytes as latin-1, with `types`), then wait
                     for the disconnect; any path starting with /scope
  /accept-headers    accept with subprotocol ?pick= (when offered) and extra headers x-ws-accepted,
                     set-cookie
  /close-4001        accept, then websocket.close 4001 "bye now"; then wait for the disconnect
  /return-after-accept   accept, then return without closing
  /raise-after-accept    accept, then raise RuntimeError("boom-after-accept <key>")
  /deny-close        websocket.close before accept
  /deny-return       receive the connect, return without accepting
  /deny-raise        raise RuntimeError("boom-before-accept <key>") before accept
  /deny-response     websocket.http.response.start 401 (x-denied: yes) + body "denied by app <key>"
Lifespan puts {"from_lifespan": "ws_app state"} in the state.
HTTP routes (http scope):
  /seen?key=K        the events recorded for K, as JSON
  /hello             "hello over http"
  /pid               the worker's pid
  anything else      426 "http scope: <path>" (e.g. an upgrade request served with --no-ws)
"""

import json
import os
from urllib.parse import parse_qs

_seen = {}


def _say(line):
    print(line, flush=True)


def _query(scope):
    return {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}


def _record(key, message):
    """Keeps the type, the kind and size of the data (the data itself when short), code and reason."""
    entry = {"type": message["type"]}
    for kind in ("text", "bytes"):
        data = message.get(kind)
        if data is not None:
            entry["kind"] = kind
            entry["data_type"] = type(data).__name__
            entry["length"] = len(data)
            if len(data) <= 256:
                entry["data"] = data if kind == "text" else data.decode("latin-1")
    if message["type"] == "websocket.disconnect":
        entry["code"] = message.get("code")
        entry["reason"] = message.get("reason")
        entry["code_type"] = type(message.get("code")).__name__
    _seen.setdefault(key, []).append(entry)
    if message["type"] == "websocket.disconnect":
        _say(f"WS DISCONNECT {key} {message.get('code')} {message.get('reason')}")


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def _connect(receive, key):
    message = await receive()
    _record(key, message)
    assert message["type"] == "websocket.connect", message


async def _until_disconnect(receive, key):
    while True:
        message = await receive()
        _record(key, message)
        if message["type"] == "websocket.disconnect":
            return


async def echo(scope, receive, send, key, q):
    await _connect(receive, key)
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        _record(key, message)
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_route(scope, receive, send, key, q):
    await _connect(receive, key)
    await send({"type": "websocket.accept"})
    payload = {
        "scope": _plain(scope),
        "has_method": "method" in scope,
        "types": {k: type(v).__name__ for k, v in scope.items()},
        "header_types": sorted({"%s[%s,%s]" % (type(h).__name__, type(h[0]).__name__, type(h[1]).__name__)
                                for h in scope["headers"]}),
        "subprotocol_types": sorted({type(s).__name__ for s in scope.get("subprotocols", ())}),
        "pid": os.getpid(),
    }
    await send({"type": "websocket.send", "text": json.dumps(payload)})
    await _until_disconnect(receive, key)


async def accept_headers(scope, receive, send, key, q):
    await _connect(receive, key)
    pick = q.get("pick")
    message = {"type": "websocket.accept",
               "headers": [(b"x-ws-accepted", ("yes " + key).encode()), (b"set-cookie", b"session=abc; Path=/")]}
    if pick is not None and pick in scope.get("subprotocols", []):
        message["subprotocol"] = pick
    await send(message)
    await send({"type": "websocket.send", "text": "subprotocols=" + ",".join(scope.get("subprotocols", []))})
    await _until_disconnect(receive, key)


async def close_4001(scope, receive, send, key, q):
    await _connect(receive, key)
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
    _say(f"WS CLOSED BY APP {key}")


async def return_after_accept(scope, receive, send, key, q):
    await _connect(receive, key)
    await send({"type": "websocket.accept"})
    _say(f"WS RETURNING {key}")


async def raise_after_accept(scope, receive, send, key, q):
    await _connect(receive, key)
    await send({"type": "websocket.accept"})
    raise RuntimeError(f"boom-after-accept {key}")


async def deny_close(scope, receive, send, key, q):
    await _connect(receive, key)
    await send({"type": "websocket.close"})


async def deny_return(scope, receive, send, key, q):
    await _connect(receive, key)


async def deny_raise(scope, receive, send, key, q):
    await _connect(receive, key)
    raise RuntimeError(f"boom-before-accept {key}")


async def deny_response(scope, receive, send, key, q):
    await _connect(receive, key)
    body = f"denied by app {key}".encode()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-denied", b"yes"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


WS_ROUTES = {
    "/echo": echo,
    "/accept-headers": accept_headers,
    "/close-4001": close_4001,
    "/return-after-accept": return_after_accept,
    "/raise-after-accept": raise_after_accept,
    "/deny-close": deny_close,
    "/deny-return": deny_return,
    "/deny-raise": deny_raise,
    "/deny-response": deny_response,
}


async def _respond(send, status, body, content_type=b"text/plain"):
    if isinstance(body, str):
        body = body.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    q = _query(scope)
    path = scope["path"]
    if path == "/seen":
        await _respond(send, 200, json.dumps(_seen.get(q.get("key", ""), [])), b"application/json")
    elif path == "/hello":
        await _respond(send, 200, "hello over http")
    elif path == "/pid":
        await _respond(send, 200, str(os.getpid()))
    else:
        await _respond(send, 426, "http scope: " + path)


async def _lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["from_lifespan"] = "ws_app state"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, receive, send)
        return
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    q = _query(scope)
    key = q.get("key", "-")
    path = scope["path"]
    handler = scope_route if path.startswith("/scope") else WS_ROUTES.get(path)
    if handler is None:
        await receive()
        await send({"type": "websocket.close", "code": 4404})
        return
    await handler(scope, receive, send, key, q)
