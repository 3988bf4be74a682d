"""Raw RSGI app for the RSGI tests (run with --interface rsgi, or auto: it has __rsgi__).

An object of class App: `__rsgi__` serves, `__rsgi_init__(loop)` records what it saw (GET /init
reports it), `__rsgi_del__(loop)` prints "RSGI DEL <pid>" and writes a JSON marker to the file named
by $RSGI_DEL_MARKER (if set); with $RSGI_DEL_RAISE set it then raises RuntimeError("rsgi del failed
<$RSGI_DEL_RAISE>"). Its `__call__` is an ASGI-style callable that must never be used (the server
prefers `__rsgi__`). Events for the tests are printed to stdout, flushed, tagged with the request's
`key` (query string). One worker: module state is shared by all requests.

HTTP routes (by scope.path):
  /info...                the scope as JSON: every attribute, the headers through each Headers
                          method, lookups of the names in ?look=a,b (as given and uppercased), the
                          types, and what assigning a scope attribute raises. Any path starting /info
  /imports                mica.rsgi and granian.rsgi: the names, and whether they are the same objects
  /init                   what __rsgi_init__ saw, and whether requests run on its loop
  /echo                   body = await protocol(); response_bytes(200, octet-stream, body)
  /echos                  response_stream, then each chunk of `async for` sent back as it arrives
  /digest                 `async for` over the body: {"length", "sha256", "chunks", "empty_chunks"}
  /digest-call            await protocol(): {"length", "sha256", "type"}
  /body-twice?mode=M      M = call-call | iter-iter | call-iter | iter-call: reads the body the first
                          way, then tries the second: {"first": length, "error": class name,
                          "message", "is_protocol_error", "sync": raised by the call itself}
  /read-abort?key=K&how=call|iter   prints "rsgi-read-start K", reads the body; prints
                          "rsgi-read-abort K <exception class>" ("none" if it read it all)
  /empty?status=N         response_empty(N, [("x-kind", "empty")])
  /str                    response_str(200, text/plain utf-8, "héllo wörld ✓")
  /str-defaults           response_str(body="defaults") (default status and headers)
  /bytes                  response_bytes(201, x-multi twice, X-Upper, a non-ASCII value, body)
  /bytearray              response_bytes(200, [], bytearray(b"from a bytearray"))
  /file?status=N&cl=1     response_file(N, [content-type, x-app] (+ content-length with cl=1),
                          the path in the file-path request header)
  /file_range             Granian's test scheme: headers file-path and range: bytes=S-E (end
                          inclusive); 416 "out" when S is past the end, 416 "invalid" when
                          response_file_range raises ValueError; else 206 with content-range
  /file_range_raw?start=S&end=E   response_file_range(200, [x-app], file-path, S, E) as given
  /stream                 response_stream; send_bytes(b"test"), send_str("test"), send_bytes(b"test")
  /gated?key=K&n=N        response_stream; sends "chunk I\n" then waits for /release?key=K before
                          the next one; prints "rsgi-gated K I" after each send
  /release?key=K          releases the next chunk of /gated?key=K
  /push?key=K&n=N&size=S  response_stream; N chunks of S bytes, counting completed sends
  /progress?key=K         {"sent": sends of /push?key=K completed so far, "done": bool}
  /push-until-closed?key=K   streams 64 KiB chunks until a send raises; prints
                          "rsgi-push-closed K <exception class>"
  /wait-disconnect?key=K  response_stream, send "waiting\n", await client_disconnect(); prints
                          "rsgi-disconnected K"
  /watch-then-respond?key=K  a task awaits client_disconnect(); response_str("ok"); the task
                          prints "rsgi-watch-done K" once it resolves
  /raise?key=K            raises RuntimeError("rsgi boom K") before responding
  /no-response            returns without a response
  /second-response        response_str(200, "first"), then response_bytes(500, "second")
  /stream-after-response?key=K   response_str(200, "first"), then response_stream: prints
                          "rsgi-stream-after-response K <exception class>"
  /response-after-stream  response_stream, send "a", response_bytes(500, "late"), send "b"
  /raise-in-stream?key=K  response_stream, send "partial", then raises RuntimeError("rsgi stream boom K")
  /status?code=N          response_str(N, [], "status N")
  /str-not-str            response_str(200, [], b"bytes")  (TypeError)
  /pid                    the worker's pid
  /block?s=N              blocks the event loop for N seconds (time.sleep), then "ok"
Websocket routes:
  /ws_echo?key=K&describe=1   accept; echo text as text and bytes as bytes (describe=1: send a
                          JSON description of each message instead); after the close message,
                          receive() again: prints "rsgi-ws-closed K kind=<int> data=<repr>" and
                          "rsgi-ws-after-close K <exception class>"
  /ws_reject?status=N     close(N) before accept (default 403)
  /ws_close?key=K&code=C  accept, send "closing", close(C); then send: prints
                          "rsgi-ws-send-after-close K <exception class>"
  /ws_info...             accept, send the scope as JSON text, wait for the close, close()
  /ws_nothing             returns without accepting or rejecting
  /ws_raise_before        raises before accepting
  /ws_raise_after?key=K   accepts, raises RuntimeError("rsgi ws boom K")
  /ws_return_open         accepts, sends "hi", returns with the socket open
  /ws_push?key=K          accepts, sends "ping" until a send raises; prints
                          "rsgi-ws-push-end K <exception class>"
  /ws_accept_twice?key=K  accepts, then accept() again: prints "rsgi-ws-accept-twice K <exception
                          class>", sends "still open", closes with 1000
"""

import asyncio
import hashlib
import json
import os
import sys
import time
from urllib.parse import parse_qs

import granian.rsgi
import mica.rsgi
from granian.rsgi import HTTPProtocol as GHTTPProtocol
from granian.rsgi import ProtocolClosed as GProtocolClosed
from granian.rsgi import ProtocolError as GProtocolError
from granian.rsgi import Scope as GScope
from mica.rsgi import (
    Headers,
    HTTPProtocol,
    ProtocolClosed,
    ProtocolError,
    Scope,
    WebsocketMessageType,
    WebsocketProtocol,
)

NAMES = ("Scope", "Headers", "HTTPProtocol", "WebsocketProtocol", "WebsocketMessageType", "ProtocolError", "ProtocolClosed")


def say(text):
    # One write per line: print() writes the text and the newline separately, and two workers
    # sharing stdout could then put their lines on one.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def query(scope):
    return {k: v[-1] for k, v in parse_qs(scope.query_string, keep_blank_values=True).items()}


def scope_dict(scope):
    """Every scope attribute, and the headers through every Headers method."""
    h = scope.headers
    q = query(scope)
    lookups = {}
    for name in filter(None, q.get("look", "").split(",")):
        for key in (name, name.upper()):
            try:
                item = h[key]
            except KeyError:
                item = "<KeyError>"
            lookups[key] = {
                "get": h.get(key),
                "get_default": h.get(key, "<default>"),
                "get_all": h.get_all(key),
                "contains": key in h,
                "getitem": item,
            }
    try:
        scope.path = "/changed"
        readonly = "assigned"
    except Exception as exc:  # a read-only record: AttributeError
        readonly = type(exc).__name__
    return {
        "proto": scope.proto,
        "http_version": scope.http_version,
        "rsgi_version": scope.rsgi_version,
        "server": scope.server,
        "client": scope.client,
        "scheme": scope.scheme,
        "method": scope.method,
        "path": scope.path,
        "query_string": scope.query_string,
        "authority": scope.authority,
        "headers": dict(h.items()),
        "items": [list(pair) for pair in h.items()],
        "keys": h.keys(),
        "values": h.values(),
        "iter": [name for name in h],
        "len": len(h),
        "dict": dict(h),
        "lookups": lookups,
        "missing": {
            "get": h.get("x-not-sent"),
            "get_default": h.get("x-not-sent", "<default>"),
            "get_all": h.get_all("x-not-sent"),
            "contains": "x-not-sent" in h,
        },
        "types": {
            "scope_is_Scope": isinstance(scope, Scope),
            "headers_is_Headers": isinstance(h, Headers),
            "attributes": {name: type(getattr(scope, name)).__name__ for name in
                           ("proto", "http_version", "rsgi_version", "server", "client", "scheme",
                            "method", "path", "query_string", "authority")},
        },
        "readonly": readonly,
    }


def json_response(protocol, data, status=200):
    protocol.response_bytes(status, [("content-type", "application/json")], json.dumps(data).encode())


# ---------------------------------------------------------------- shared state of the routes

gates = {}          # /gated key -> asyncio.Queue of releases
pushed = {}         # /push key -> {"sent": n, "done": bool}


def gate(key):
    return gates.setdefault(key, asyncio.Queue())


# ---------------------------------------------------------------- HTTP routes

async def info(scope, protocol):
    data = scope_dict(scope)
    data["protocol_is_HTTPProtocol"] = isinstance(protocol, HTTPProtocol)
    json_response(protocol, data)


async def imports(scope, protocol):
    json_response(protocol, {
        "same": {name: getattr(granian.rsgi, name) is getattr(mica.rsgi, name) for name in NAMES},
        "from_import_same": [GScope is Scope, GHTTPProtocol is HTTPProtocol, GProtocolError is ProtocolError,
                             GProtocolClosed is ProtocolClosed],
        "protocol_error_is_runtime_error": issubclass(ProtocolError, RuntimeError),
        "protocol_closed_is_runtime_error": issubclass(ProtocolClosed, RuntimeError),
        "error_unrelated": not issubclass(ProtocolError, ProtocolClosed) and not issubclass(ProtocolClosed, ProtocolError),
        "message_types": {m.name: int(m) for m in WebsocketMessageType},
        "module_names": [mica.rsgi.__name__, granian.rsgi.__name__],
    })


async def echo(scope, protocol):
    body = await protocol()
    protocol.response_bytes(200, [("content-type", "application/octet-stream"), ("x-body-type", type(body).__name__)], body)


async def echos(scope, protocol):
    transport = protocol.response_stream(200, [("content-type", "application/octet-stream")])
    async for chunk in protocol:
        await transport.send_bytes(chunk)


async def digest(scope, protocol):
    sha = hashlib.sha256()
    length = chunks = empty = 0
    async for chunk in protocol:
        if type(chunk) is not bytes:
            raise TypeError(f"chunk is {type(chunk).__name__}")
        chunks += 1
        empty += not chunk
        length += len(chunk)
        sha.update(chunk)
    json_response(protocol, {"length": length, "sha256": sha.hexdigest(), "chunks": chunks, "empty_chunks": empty})


async def digest_call(scope, protocol):
    body = await protocol()
    json_response(protocol, {"length": len(body), "sha256": hashlib.sha256(body).hexdigest(), "type": type(body).__name__})


async def body_twice(scope, protocol):
    first_way, second_way = query(scope)["mode"].split("-")
    if first_way == "call":
        first = len(await protocol())
    else:
        first = 0
        async for chunk in protocol:
            first += len(chunk)
    result = {"first": first, "error": None}

    def failed(exc, sync):
        result.update(error=type(exc).__name__, message=str(exc), is_protocol_error=isinstance(exc, ProtocolError), sync=sync)

    try:
        second = protocol() if second_way == "call" else protocol.__aiter__()
    except Exception as exc:        # raised by the call itself
        failed(exc, True)
    else:
        try:
            if second_way == "call":
                await second
            else:
                async for _ in second:
                    pass
        except Exception as exc:    # raised only when awaited
            failed(exc, False)
    json_response(protocol, result)


async def read_abort(scope, protocol):
    q = query(scope)
    say(f"rsgi-read-start {q['key']}")
    try:
        if q.get("how") == "iter":
            async for _ in protocol:
                pass
        else:
            await protocol()
        say(f"rsgi-read-abort {q['key']} none")
    except Exception as exc:
        say(f"rsgi-read-abort {q['key']} {type(exc).__name__}")
        raise


async def empty(scope, protocol):
    protocol.response_empty(int(query(scope).get("status", "200")), [("x-kind", "empty")])


async def str_route(scope, protocol):
    protocol.response_str(200, [("content-type", "text/plain; charset=utf-8")], "héllo wörld ✓")


async def str_defaults(scope, protocol):
    protocol.response_str(body="defaults")


async def bytes_route(scope, protocol):
    protocol.response_bytes(201, [("x-multi", "one"), ("x-multi", "two"), ("X-Upper", "Value"), ("x-utf8", "café"),
                                  ("content-type", "application/octet-stream")], b"\x00\x01binary\xff")


async def bytearray_route(scope, protocol):
    protocol.response_bytes(200, [], bytearray(b"from a bytearray"))


async def file_route(scope, protocol):
    q = query(scope)
    path = scope.headers["file-path"]
    headers = [("content-type", q.get("ct", "application/octet-stream")), ("x-app", "file")]
    if q.get("cl"):
        headers.append(("content-length", str(os.stat(path).st_size)))
    protocol.response_file(int(q.get("status", "200")), headers, path)


async def file_range(scope, protocol):
    path = scope.headers["file-path"]
    first, last = (int(v) for v in scope.headers["range"].removeprefix("bytes=").split("-"))
    size = os.stat(path).st_size
    if first >= size:
        protocol.response_empty(416, [("content-range", f"bytes */{size}"), ("x-reason", "out")])
        return
    last = min(last, size - 1)
    headers = [("content-type", "text/plain"), ("content-length", str(last - first + 1)),
               ("content-range", f"bytes {first}-{last}/{size}")]
    try:
        protocol.response_file_range(206, headers, path, first, last + 1)
    except ValueError:
        protocol.response_empty(416, [("content-range", f"bytes */{size}"), ("x-reason", "invalid")])


async def file_range_raw(scope, protocol):
    q = query(scope)
    protocol.response_file_range(200, [("x-app", "range")], scope.headers["file-path"], int(q["start"]), int(q["end"]))


async def stream(scope, protocol):
    transport = protocol.response_stream(200, [("content-type", "text/plain; charset=utf-8")])
    await transport.send_bytes(b"test")
    await transport.send_str("test")
    await transport.send_bytes(b"test")


async def gated(scope, protocol):
    q = query(scope)
    key, n = q["key"], int(q.get("n", "3"))
    releases = gate(key)
    transport = protocol.response_stream(200, [("content-type", "text/plain")])
    for i in range(n):
        await transport.send_str(f"chunk {i}\n")
        say(f"rsgi-gated {key} {i}")
        if i < n - 1:
            await releases.get()


async def release(scope, protocol):
    gate(query(scope)["key"]).put_nowait(True)
    protocol.response_str(200, [], "released")


async def push(scope, protocol):
    q = query(scope)
    key, n, size = q["key"], int(q["n"]), int(q["size"])
    state = pushed[key] = {"sent": 0, "done": False}
    chunk = b"x" * size
    transport = protocol.response_stream(200, [("content-type", "application/octet-stream")])
    for _ in range(n):
        await transport.send_bytes(chunk)
        state["sent"] += 1
    state["done"] = True


async def progress(scope, protocol):
    json_response(protocol, pushed.get(query(scope)["key"], {"sent": -1, "done": False}))


async def push_until_closed(scope, protocol):
    key = query(scope)["key"]
    transport = protocol.response_stream(200, [("content-type", "application/octet-stream")])
    chunk = b"y" * 65536
    try:
        while True:
            await transport.send_bytes(chunk)
    except Exception as exc:
        say(f"rsgi-push-closed {key} {type(exc).__name__}")


async def wait_disconnect(scope, protocol):
    key = query(scope)["key"]
    transport = protocol.response_stream(200, [("content-type", "text/plain")])
    await transport.send_str("waiting\n")
    await protocol.client_disconnect()
    say(f"rsgi-disconnected {key}")


async def watch_then_respond(scope, protocol):
    key = query(scope)["key"]

    async def watch():
        await protocol.client_disconnect()
        say(f"rsgi-watch-done {key}")

    watcher = asyncio.get_running_loop().create_task(watch())
    await asyncio.sleep(0)          # the watcher is waiting before the response goes out
    protocol.response_str(200, [], "ok")
    await watcher


async def raise_route(scope, protocol):
    raise RuntimeError(f"rsgi boom {query(scope)['key']}")


async def no_response(scope, protocol):
    return None


async def second_response(scope, protocol):
    protocol.response_str(200, [("x-which", "first")], "first")
    protocol.response_bytes(500, [("x-which", "second")], b"second")


async def stream_after_response(scope, protocol):
    key = query(scope)["key"]
    protocol.response_str(200, [], "first")
    try:
        protocol.response_stream(200, [])
        say(f"rsgi-stream-after-response {key} none")
    except Exception as exc:
        say(f"rsgi-stream-after-response {key} {type(exc).__name__}")


async def response_after_stream(scope, protocol):
    transport = protocol.response_stream(200, [("content-type", "text/plain")])
    await transport.send_str("a")
    protocol.response_bytes(500, [], b"late")
    await transport.send_str("b")


async def raise_in_stream(scope, protocol):
    key = query(scope)["key"]
    transport = protocol.response_stream(200, [("content-type", "text/plain")])
    await transport.send_str("partial")
    raise RuntimeError(f"rsgi stream boom {key}")


async def status(scope, protocol):
    code = int(query(scope)["code"])
    protocol.response_str(code, [], f"status {code}")


async def str_not_str(scope, protocol):
    protocol.response_str(200, [], b"bytes")


async def pid(scope, protocol):
    protocol.response_str(200, [], str(os.getpid()))


async def block(scope, protocol):
    time.sleep(float(query(scope).get("s", "2")))
    protocol.response_str(200, [], "ok")


HTTP_ROUTES = {
    "/imports": imports,
    "/echo": echo,
    "/echos": echos,
    "/digest": digest,
    "/digest-call": digest_call,
    "/body-twice": body_twice,
    "/read-abort": read_abort,
    "/empty": empty,
    "/str": str_route,
    "/str-defaults": str_defaults,
    "/bytes": bytes_route,
    "/bytearray": bytearray_route,
    "/file": file_route,
    "/file_range": file_range,
    "/file_range_raw": file_range_raw,
    "/stream": stream,
    "/gated": gated,
    "/release": release,
    "/push": push,
    "/progress": progress,
    "/push-until-closed": push_until_closed,
    "/wait-disconnect": wait_disconnect,
    "/watch-then-respond": watch_then_respond,
    "/raise": raise_route,
    "/no-response": no_response,
    "/second-response": second_response,
    "/stream-after-response": stream_after_response,
    "/response-after-stream": response_after_stream,
    "/raise-in-stream": raise_in_stream,
    "/status": status,
    "/str-not-str": str_not_str,
    "/pid": pid,
    "/block": block,
}


# ---------------------------------------------------------------- websocket routes

async def ws_echo(scope, protocol):
    q = query(scope)
    key, describe = q.get("key", "-"), q.get("describe")
    transport = await protocol.accept()
    while True:
        message = await transport.receive()
        if message.kind == WebsocketMessageType.close:
            say(f"rsgi-ws-closed {key} kind={int(message.kind)} data={message.data!r}")
            break
        if describe:
            await transport.send_str(json.dumps({
                "kind": int(message.kind),
                "is_bytes_kind": message.kind == WebsocketMessageType.bytes,
                "is_string_kind": message.kind == WebsocketMessageType.string,
                "data_type": type(message.data).__name__,
                "length": len(message.data),
            }))
        elif message.kind == WebsocketMessageType.bytes:
            await transport.send_bytes(message.data)
        else:
            await transport.send_str(message.data)
    try:
        await transport.receive()
        say(f"rsgi-ws-after-close {key} none")
    except Exception as exc:
        say(f"rsgi-ws-after-close {key} {type(exc).__name__}")


async def ws_reject(scope, protocol):
    protocol.close(int(query(scope).get("status", "403")))


async def ws_close(scope, protocol):
    q = query(scope)
    transport = await protocol.accept()
    await transport.send_str("closing")
    protocol.close(int(q["code"]))
    try:
        await transport.send_str("after close")
        say(f"rsgi-ws-send-after-close {q['key']} none")
    except Exception as exc:
        say(f"rsgi-ws-send-after-close {q['key']} {type(exc).__name__}")


async def ws_info(scope, protocol):
    data = scope_dict(scope)
    data["protocol_is_WebsocketProtocol"] = isinstance(protocol, WebsocketProtocol)
    transport = await protocol.accept()
    await transport.send_str(json.dumps(data))
    while (await transport.receive()).kind != WebsocketMessageType.close:
        pass
    protocol.close()


async def ws_nothing(scope, protocol):
    return None


async def ws_raise_before(scope, protocol):
    raise RuntimeError("rsgi ws boom before accept")


async def ws_raise_after(scope, protocol):
    await protocol.accept()
    raise RuntimeError(f"rsgi ws boom {query(scope).get('key')}")


async def ws_return_open(scope, protocol):
    transport = await protocol.accept()
    await transport.send_str("hi")


async def ws_push(scope, protocol):
    key = query(scope)["key"]
    transport = await protocol.accept()
    try:
        while True:
            await transport.send_str("ping")
    except Exception as exc:
        say(f"rsgi-ws-push-end {key} {type(exc).__name__}")


async def ws_accept_twice(scope, protocol):
    key = query(scope)["key"]
    transport = await protocol.accept()
    try:
        await protocol.accept()
        say(f"rsgi-ws-accept-twice {key} none")
    except Exception as exc:
        say(f"rsgi-ws-accept-twice {key} {type(exc).__name__}")
    await transport.send_str("still open")
    protocol.close(1000)


WS_ROUTES = {
    "/ws_echo": ws_echo,
    "/ws_reject": ws_reject,
    "/ws_close": ws_close,
    "/ws_nothing": ws_nothing,
    "/ws_raise_before": ws_raise_before,
    "/ws_raise_after": ws_raise_after,
    "/ws_return_open": ws_return_open,
    "/ws_push": ws_push,
    "/ws_accept_twice": ws_accept_twice,
}


# ---------------------------------------------------------------- the app

class App:
    def __init__(self):
        self.init = None
        self.loop = None

    def __rsgi_init__(self, loop):
        async def async_init():
            await asyncio.sleep(0)
            return "async init done"

        running = loop.is_running()
        self.loop = loop
        self.init = {
            "called": True,
            "loop_running": running,
            "async_result": loop.run_until_complete(async_init()),
            "pid": os.getpid(),
        }
        say(f"RSGI INIT {os.getpid()}")

    def __rsgi_del__(self, loop):
        async def async_cleanup():
            await asyncio.sleep(0)
            return "async cleanup done"

        running = loop.is_running()
        record = {
            "pid": os.getpid(),
            "loop_running": running,
            "same_loop": loop is self.loop,
            "async_result": loop.run_until_complete(async_cleanup()),
        }
        marker = os.environ.get("RSGI_DEL_MARKER")
        if marker:
            with open(marker, "w") as f:
                json.dump(record, f)
        say(f"RSGI DEL {os.getpid()}")
        if os.environ.get("RSGI_DEL_RAISE"):
            raise RuntimeError(f"rsgi del failed {os.environ['RSGI_DEL_RAISE']}")

    async def __call__(self, scope, receive, send):
        # ASGI-style: a server that called this instead of __rsgi__ would fail every request.
        raise AssertionError("__call__ used instead of __rsgi__")

    async def __rsgi__(self, scope, protocol):
        path = scope.path
        if scope.proto == "ws":
            if path.startswith("/ws_info"):
                await ws_info(scope, protocol)
            else:
                await WS_ROUTES[path](scope, protocol)
            return
        if path.startswith("/info"):
            await info(scope, protocol)
        elif path == "/init":
            json_response(protocol, dict(self.init or {"called": False},
                                         same_loop=asyncio.get_running_loop() is self.loop))
        else:
            await HTTP_ROUTES[path](scope, protocol)


app = App()
