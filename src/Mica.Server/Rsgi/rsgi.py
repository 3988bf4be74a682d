"""RSGI 1.6 for Mica, Python side: the app's protocol objects, and the types apps import.

Imported once per worker as `mica.rsgi` (and, when Granian is not installed, also as `granian.rsgi`,
so apps written for Granian find the names they import for type hints). The C# side (`_mica`)
builds each scope, owns the socket and completes the futures handed to it; this module keeps the
rules of the spec (docs/spec/RSGI.md in emmett-framework/granian).

Where Granian's behaviour is an accident rather than the spec, Mica does the safe thing instead:
a stream ends when the app returns (not when the transport is garbage-collected) and its sends
wait for the client (back-pressure); misuse is logged; a websocket close code reaches the client.
"""

import logging
from enum import IntEnum

import _mica

logger = logging.getLogger("mica")

_send = _mica.send                # (handle, status, headers, body, more_body, future)
_send_file = _mica.send_file      # (handle, status, headers, path[, start, end])
_receive = _mica.receive          # (handle, future) -> future: (bytes, more_body), or None once the client left
_wait_disconnect = _mica.wait_disconnect
_finish = _mica.finish
_ws_accept = _mica.ws_accept      # (handle, subprotocol, headers, future) -> future: True once open
_ws_receive = _mica.ws_receive    # (handle, future) -> future: str | bytes | (close code, reason)
_ws_send = _mica.ws_send          # (handle, data, future) -> future: False if the socket is closed
_ws_close = _mica.ws_close        # (handle, code, reason, future)

RSGI_VERSION = "1.6"


class ProtocolError(RuntimeError):
    """The app used the protocol out of order (read the body twice, sent after close...)."""

    def __init__(self, message="RSGI protocol error"):
        super().__init__(message)


class ProtocolClosed(RuntimeError):
    """The other side is gone: the client disconnected or the websocket is closed."""

    def __init__(self, message="RSGI transport is closed"):
        super().__init__(message)


# Scope and Headers are filled in by the C# side for each request without running Python code
# (see RecordType.cs); their fields are declared here, and Headers' methods are added below.
Scope = _mica.record_type(
    "mica.rsgi.Scope",
    "An RSGI connection scope (read-only).",
    ("proto", "http_version", "rsgi_version", "server", "client", "scheme", "method", "path",
     "query_string", "headers", "authority"),
    False)

Headers = _mica.record_type(
    "mica.rsgi.Headers",
    "The request headers: names lowercase, lookups case-insensitive, repeated headers kept apart.",
    ("_pairs",),     # [(lowercase name, value), ...] in arrival order of names
    False)


def _methods_of(record_type):
    """Class decorator: the class body's functions become methods of a C#-declared record type."""
    def install(cls):
        for name, value in vars(cls).items():
            if callable(value) and name not in ("__dict__", "__weakref__"):
                setattr(record_type, name, value)
        return record_type
    return install


@_methods_of(Headers)
class _Headers:
    def get(self, key, default=None):
        key = key.lower()
        for name, value in self._pairs:
            if name == key:
                return value
        return default

    def get_all(self, key):
        key = key.lower()
        return [value for name, value in self._pairs if name == key]

    def keys(self):
        return list(dict.fromkeys(name for name, _ in self._pairs))

    def values(self):
        return [value for _, value in self._pairs]

    def items(self):
        return list(self._pairs)

    def __getitem__(self, key):
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        return self.get(key) is not None

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def __repr__(self):
        return f"Headers({self._pairs!r})"


class WebsocketMessageType(IntEnum):
    close = 0
    bytes = 1
    string = 2


class WebsocketMessage:
    """What `transport.receive()` returns: `kind` (a WebsocketMessageType) and `data` (None for close)."""

    __slots__ = ("kind", "data")

    def __init__(self, kind, data):
        self.kind = kind
        self.data = data

    def __repr__(self):
        return f"WebsocketMessage({self.kind!r}, {self.data!r})"


_CLOSE = WebsocketMessageType.close
_BYTES = WebsocketMessageType.bytes
_STRING = WebsocketMessageType.string

# Response states (_START is falsy: "nothing sent yet").
_START, _STREAM, _DONE = 0, 1, 2


class HTTPProtocol:
    """One HTTP request's protocol object, bound to the C# exchange `handle`."""

    __slots__ = ("handle", "loop", "body", "more_body", "body_taken", "state", "disconnected", "watcher")

    def __init__(self, handle, loop, body, more_body):
        self.handle = handle
        self.loop = loop
        self.body = body            # the first chunk, read before dispatch
        self.more_body = more_body
        self.body_taken = False
        self.state = _START
        self.disconnected = False
        self.watcher = None         # the future client_disconnect() hands out

    # ---------------------------------------------------------------- request body

    def _take_body(self):
        if self.body_taken:
            raise ProtocolError("the request body was already read")
        self.body_taken = True

    def __call__(self):
        """Awaitable: the whole request body, as bytes."""
        self._take_body()
        return self._read_all()

    async def _read_all(self):
        first = self.body
        self.body = None
        if not self.more_body:
            return first
        chunks = [first] if first else []
        async for chunk in self._chunks():
            chunks.append(chunk)
        return b"".join(chunks)

    def __aiter__(self):
        """Async iterator over the request body's chunks as they arrive."""
        self._take_body()
        return self._chunks()

    async def _chunks(self):
        first = self.body
        self.body = None
        if first:
            yield first
        while self.more_body:
            fut = self.loop.create_future()
            _receive(self.handle, fut)
            chunk = await fut
            if chunk is None:
                self.disconnected = True
                raise ProtocolClosed()
            data, self.more_body = chunk
            if data:
                yield data

    def client_disconnect(self):
        """Awaitable resolved when the client goes away (or the request is over)."""
        watcher = self.watcher
        if watcher is None or watcher.cancelled():
            watcher = self.watcher = self.loop.create_future()
            _wait_disconnect(self.handle, watcher)
        return watcher

    # ---------------------------------------------------------------- responses

    # Each response method checks the state inline: this is the per-request path.
    def _late(self, what):
        logger.error("RSGI app called %s after the response was already sent; ignored", what)

    def response_empty(self, status=200, headers=()):
        if self.state:
            return self._late("response_empty")
        self.state = _DONE
        _send(self.handle, status, headers, b"", False, None)

    def response_bytes(self, status=200, headers=(), body=b""):
        if type(body) is not bytes:
            body = bytes(body)
        if self.state:
            return self._late("response_bytes")
        self.state = _DONE
        _send(self.handle, status, headers, body, False, None)

    def response_str(self, status=200, headers=(), body=""):
        if type(body) is not str:
            raise TypeError(f"response_str() body must be str, not {type(body).__name__}")
        if self.state:
            return self._late("response_str")
        self.state = _DONE
        _send(self.handle, status, headers, body.encode(), False, None)

    def response_file(self, status, headers, file):
        self._send_file("response_file", status, headers, file, None, None)

    def response_file_range(self, status, headers, file, start, end):
        if start < 0 or start >= end:
            raise ValueError("Invalid range")
        self._send_file("response_file_range", status, headers, file, start, end)

    def _send_file(self, what, status, headers, file, start, end):
        if self.state:
            return self._late(what)
        self.state = _DONE
        try:
            if start is None:
                _send_file(self.handle, status, headers, str(file))
            else:
                _send_file(self.handle, status, headers, str(file), start, end)
        except OSError as exc:
            # As Granian: a file that cannot be opened is the client's 404, not the app's error.
            logger.info("Cannot open file %s: %s", file, exc)
            _send(self.handle, 404, (("content-type", "text/plain; charset=utf-8"),), b"Not found", False, None)

    def response_stream(self, status=200, headers=()):
        """Starts a streamed response (status and headers go out now); returns its transport."""
        if self.state != _START:
            raise ProtocolError("response_stream() after the response was already sent")
        self.state = _STREAM
        return HTTPStreamTransport(self, status, headers)


class HTTPStreamTransport:
    """The body of a streamed response: each send waits until the chunk is handed to the client."""

    __slots__ = ("proto", "pending")

    def __init__(self, proto, status, headers):
        self.proto = proto
        self.pending = proto.loop.create_future()     # the flush of the status and headers
        _send(proto.handle, status, headers, b"", True, self.pending)

    async def send_bytes(self, data):
        if type(data) is not bytes:
            data = bytes(data)
        await self._send(data)

    async def send_str(self, data):
        if type(data) is not str:
            raise TypeError(f"send_str() needs str, not {type(data).__name__}")
        await self._send(data.encode())

    async def _send(self, data):
        proto = self.proto
        if self.pending is not None:
            ok = await self.pending
            self.pending = None
            if not ok:
                proto.disconnected = True
        if proto.disconnected or proto.state != _STREAM:
            raise ProtocolClosed()
        fut = proto.loop.create_future()
        _send(proto.handle, None, None, data, True, fut)
        if not await fut:
            proto.disconnected = True
            raise ProtocolClosed()


async def run_http(app, scope, proto):
    """Runs the app for one request; whatever happens, the C# exchange is finished exactly once.
    A stream ends when the app returns; an app that returns without a response gets a 500."""
    try:
        await app(scope, proto)
    except BaseException as exc:
        logger.error("Exception in RSGI application", exc_info=exc)
        if not isinstance(exc, Exception):
            raise
    else:
        if proto.state == _STREAM:
            proto.state = _DONE
            if not proto.disconnected:
                _send(proto.handle, None, None, b"", False, None)
        elif proto.state == _START:
            logger.error("RSGI application returned without sending a response")
    finally:
        _finish(proto.handle)


def http_dispatcher(app, loop, start):
    """The function the C# side calls for each new request (scope already built); `start(coro)`
    runs it: the loop's `create_task`, or a `DirectTask` with `--task-impl rust`."""
    def dispatch(handle, scope, body, more_body):
        start(run_http(app, scope, HTTPProtocol(handle, loop, body, more_body)))

    return dispatch


# WebSocket states.
_CONNECTING, _OPEN, _CLOSED = 0, 1, 2


class WebsocketProtocol:
    """One websocket's protocol object: `accept()` opens it, `close(status)` ends or denies it."""

    __slots__ = ("handle", "loop", "state", "transport")

    def __init__(self, handle, loop):
        self.handle = handle
        self.loop = loop
        self.state = _CONNECTING
        self.transport = None

    async def accept(self):
        if self.state != _CONNECTING:
            raise ProtocolError("accept() on a websocket that is already accepted or closed")
        fut = self.loop.create_future()
        _ws_accept(self.handle, None, (), fut)
        self.state = _OPEN
        if not await fut:
            self.state = _CLOSED
            raise ProtocolClosed("the client left before the websocket was accepted")
        self.transport = WebsocketTransport(self)
        return self.transport

    def close(self, status=None):
        """Before accept: deny the websocket with HTTP `status` (default 403). After: close the
        socket with `status` as the close code (1000 when it is none, or one that cannot be sent)."""
        state = self.state
        self.state = _CLOSED
        if state == _CONNECTING:
            code = status if type(status) is int and 100 <= status <= 599 else 403
            _send(self.handle, code, (), b"", False, None)
        elif state == _OPEN:
            code = status if type(status) is int and _sendable_close_code(status) else 1000
            _ws_close(self.handle, code, "", None)


def _sendable_close_code(code):
    """RFC 6455 7.4: what a close frame may carry (1004-1006 and 1015 are never sent)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class WebsocketTransport:
    __slots__ = ("proto", "ended")

    def __init__(self, proto):
        self.proto = proto
        self.ended = False          # the close was already handed to the app

    async def receive(self):
        if self.ended:
            raise ProtocolClosed()
        fut = self.proto.loop.create_future()
        _ws_receive(self.proto.handle, fut)
        message = await fut
        kind = type(message)
        if kind is str:
            return WebsocketMessage(_STRING, message)
        if kind is bytes:
            return WebsocketMessage(_BYTES, message)
        self.ended = True
        return WebsocketMessage(_CLOSE, None)

    async def send_bytes(self, data):
        if type(data) is not bytes:
            data = bytes(data)
        await self._send(data)

    async def send_str(self, data):
        if type(data) is not str:
            raise TypeError(f"send_str() needs str, not {type(data).__name__}")
        await self._send(data)

    async def _send(self, data):
        if self.proto.state != _OPEN:
            raise ProtocolError("send on a websocket the app has closed")
        fut = self.proto.loop.create_future()
        _ws_send(self.proto.handle, data, fut)
        if not await fut:
            raise ProtocolClosed()


async def run_websocket(app, scope, proto):
    """Runs the app for one websocket; whatever happens, the C# exchange is finished exactly once
    (403 if the app neither accepted nor denied it, a close frame if it returned with it open)."""
    try:
        await app(scope, proto)
    except BaseException as exc:
        logger.error("Exception in RSGI application (websocket)", exc_info=exc)
        if proto.state == _CONNECTING:
            _send(proto.handle, 500, (), b"Internal Server Error", False, None)
        elif proto.state == _OPEN:
            _ws_close(proto.handle, 1011, "Internal Server Error", None)
        if not isinstance(exc, Exception):
            raise
    finally:
        _finish(proto.handle)


def websocket_dispatcher(app, loop, start):
    """The function the C# side calls for each websocket handshake (scope already built), run
    with `start(coro)` as requests are."""
    def dispatch(handle, scope):
        start(run_websocket(app, scope, WebsocketProtocol(handle, loop)))

    return dispatch


def callbacks(target):
    """The app's RSGI entry point and its optional start and stop hooks (None when absent)."""
    app = getattr(target, "__rsgi__", target)
    return app, getattr(target, "__rsgi_init__", None), getattr(target, "__rsgi_del__", None)
