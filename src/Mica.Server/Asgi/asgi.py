"""ASGI 3 for Mica, Python side: the per-request `receive`/`send` state machine and lifespan.

Imported as `_mica_asgi` on the `mica-python` thread. The C# side (`_mica`) builds each scope,
owns the socket and completes the futures handed to it; this module only keeps the rules of the
spec. Messages returned to the app are fresh dicts: apps may keep or mutate them.
"""

import asyncio
import logging

import _mica

logger = logging.getLogger("mica")

_send = _mica.send
_receive = _mica.receive
_wait_disconnect = _mica.wait_disconnect
_finish = _mica.finish
_send_file = _mica.send_file      # (handle, status, headers, path): the response body is that file
_ws_accept = _mica.ws_accept      # (handle, subprotocol, headers, future) -> future: True once open
_ws_receive = _mica.ws_receive    # (handle, future) -> future: str | bytes | (close code, reason)
_ws_send = _mica.ws_send          # (handle, data, future) -> future: False if the socket is closed
_ws_close = _mica.ws_close        # (handle, code, reason, future)

# Response states.
_START, _BODY, _DONE = 0, 1, 2


def _asgi_dict():
    return {"version": "3.0", "spec_version": "2.3"}


class HttpProtocol:
    """One HTTP request's `receive` and `send`, bound to the C# exchange `handle`."""

    __slots__ = ("handle", "loop", "body", "more_body", "state", "status", "headers", "disconnected")

    def __init__(self, handle, loop, body, more_body):
        self.handle = handle
        self.loop = loop
        self.body = body            # the first chunk, read before dispatch; None once delivered
        self.more_body = more_body
        self.state = _START
        self.status = None
        self.headers = None
        self.disconnected = False

    async def receive(self):
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": self.more_body}
        if self.disconnected or self.state == _DONE:
            return {"type": "http.disconnect"}
        fut = self.loop.create_future()
        if self.more_body:
            _receive(self.handle, fut)
            chunk = await fut           # (bytes, more_body), or None when the client went away
            if chunk is not None:
                body, self.more_body = chunk
                return {"type": "http.request", "body": body, "more_body": self.more_body}
        else:
            # The body is complete: the next event is the client leaving (or the response ending).
            _wait_disconnect(self.handle, fut)
            await fut
        self.disconnected = True
        return {"type": "http.disconnect"}

    async def send(self, message):
        kind = message["type"]
        state = self.state
        if state == _START:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            status = message["status"]
            if type(status) is not int:
                raise TypeError(f"ASGI 'http.response.start' status must be an int, got {type(status).__name__}")
            self.status = status
            self.headers = message.get("headers", ())
            self.state = _BODY
            return
        if state == _BODY:
            if kind == "http.response.pathsend":
                # The extension: the server sends the file itself, without it passing through Python.
                path = message["path"]
                if not isinstance(path, str) or not path.startswith("/"):
                    raise RuntimeError(f"ASGI 'http.response.pathsend' needs an absolute path, got {path!r}")
                if not self.disconnected:
                    _send_file(self.handle, self.status, self.headers, path)
                self.state = _DONE
                return
            if kind != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
            if self.disconnected:
                return
            body = message.get("body", b"")
            if message.get("more_body", False):
                fut = self.loop.create_future()
                _send(self.handle, self.status, self.headers, body, True, fut)
                self.status = self.headers = None   # sent with the first chunk
                if not await fut:                     # False: the client went away
                    self.disconnected = True
            else:
                _send(self.handle, self.status, self.headers, body, False, None)
                self.state = _DONE
            return
        if self.disconnected:
            return
        raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")


async def run_http(app, scope, proto):
    """Runs the app for one request; whatever happens, the C# exchange is finished exactly once."""
    try:
        await app(scope, proto.receive, proto.send)
    except BaseException as exc:
        if proto.state == _DONE:
            logger.error("Exception in ASGI application after the response was sent", exc_info=exc)
        else:
            logger.error("Exception in ASGI application", exc_info=exc)
        if not isinstance(exc, Exception):
            raise
    else:
        if proto.state != _DONE and not proto.disconnected:
            logger.error("ASGI callable returned without completing response.")
    finally:
        _finish(proto.handle)


def http_dispatcher(app, loop, start):
    """The function the C# side calls for each new request (scope already built); `start(coro)`
    runs it: the loop's `create_task`, or a `DirectTask` with `--task-impl rust`."""
    def dispatch(handle, scope, body, more_body):
        start(run_http(app, scope, HttpProtocol(handle, loop, body, more_body)))

    return dispatch


class ClientDisconnected(OSError):
    """Sending on a websocket the client has closed (as uvicorn raises)."""


# WebSocket states.
_CONNECTING, _OPEN, _RESPONSE, _CLOSED = 0, 1, 2, 3


class WebSocketProtocol:
    """One websocket's `receive` and `send`, bound to the C# exchange `handle`.

    Before `websocket.accept` the app may instead deny the connection: `websocket.close` (403) or
    a whole HTTP response (`websocket.http.response.start` / `.body`, the extension).
    """

    __slots__ = ("handle", "loop", "state", "connect_delivered", "close_code", "close_reason", "http")

    def __init__(self, handle, loop):
        self.handle = handle
        self.loop = loop
        self.state = _CONNECTING
        self.connect_delivered = False
        self.close_code = None      # set once the client is gone: what websocket.disconnect reports
        self.close_reason = ""
        self.http = None            # the denial response, an HttpProtocol

    def _disconnect(self):
        return {"type": "websocket.disconnect", "code": self.close_code, "reason": self.close_reason}

    async def receive(self):
        if not self.connect_delivered:
            self.connect_delivered = True
            return {"type": "websocket.connect"}
        if self.close_code is not None:
            return self._disconnect()
        fut = self.loop.create_future()
        _ws_receive(self.handle, fut)
        message = await fut
        kind = type(message)
        if kind is str:
            return {"type": "websocket.receive", "text": message}
        if kind is bytes:
            return {"type": "websocket.receive", "bytes": message}
        self.close_code, self.close_reason = message
        if self.state == _OPEN:
            self.state = _CLOSED
        return self._disconnect()

    async def send(self, message):
        kind = message["type"]
        state = self.state
        if state == _CONNECTING:
            if kind == "websocket.accept":
                headers = message.get("headers") or ()
                fut = self.loop.create_future()
                _ws_accept(self.handle, message.get("subprotocol"), headers, fut)
                if await fut:
                    self.state = _OPEN
                else:
                    self.state = _CLOSED
                    self.close_code = 1006
                return
            if kind == "websocket.close":
                self.state = _CLOSED    # denied: the C# side answers 403 when the app finishes
                return
            if kind == "websocket.http.response.start":
                self.state = _RESPONSE
                self.http = HttpProtocol(self.handle, self.loop, b"", False)
                await self.http.send({"type": "http.response.start", "status": message["status"],
                                      "headers": message.get("headers", ())})
                return
            raise RuntimeError(f"Expected ASGI message 'websocket.accept', 'websocket.close' or "
                               f"'websocket.http.response.start', but got '{kind}'.")
        if state == _OPEN:
            if kind == "websocket.send":
                data = message.get("bytes")
                if data is None:
                    data = message.get("text")
                    if data is None:
                        raise TypeError("ASGI 'websocket.send' needs 'bytes' or 'text'")
                fut = self.loop.create_future()
                _ws_send(self.handle, data, fut)
                if not await fut:
                    raise ClientDisconnected("websocket closed")
                return
            if kind == "websocket.close":
                self.state = _CLOSED
                fut = self.loop.create_future()
                _ws_close(self.handle, message.get("code") or 1000, message.get("reason") or "", fut)
                await fut
                return
            raise RuntimeError(f"Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'.")
        if state == _RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body', but got '{kind}'.")
            await self.http.send({"type": "http.response.body", "body": message.get("body", b""),
                                  "more_body": message.get("more_body", False)})
            return
        if self.close_code is not None and kind in ("websocket.send", "websocket.close"):
            raise ClientDisconnected("websocket closed")
        raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending 'websocket.close' "
                           "or response already completed.")


async def run_websocket(app, scope, proto):
    """Runs the app for one websocket; whatever happens, the C# exchange is finished exactly once
    (403 if the app never accepted, a close frame if it returned with the socket open)."""
    try:
        await app(scope, proto.receive, proto.send)
    except BaseException as exc:
        logger.error("Exception in ASGI application (websocket)", exc_info=exc)
        if proto.state == _CONNECTING:
            _send(proto.handle, 500, [(b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error", False, None)
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
        start(run_websocket(app, scope, WebSocketProtocol(handle, loop)))

    return dispatch


class Lifespan:
    """The lifespan protocol: startup before serving, shutdown after the last request.

    Like uvicorn's "auto" mode, an app that raises (or returns) before completing startup is
    taken not to support lifespan and is served without it.
    """

    def __init__(self, app, loop):
        self.app = app
        self.loop = loop
        self.state = {}
        self.queue = asyncio.Queue()
        self.startup_done = loop.create_future()
        self.shutdown_done = loop.create_future()
        self.supported = True
        self.task = None

    async def _main(self):
        scope = {"type": "lifespan", "asgi": _asgi_dict(), "state": self.state}
        try:
            await self.app(scope, self.queue.get, self._send)
        except BaseException as exc:
            if not self.startup_done.done():
                self.supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported (%s: %s); serving without it.",
                            type(exc).__name__, exc)
                self.startup_done.set_result(None)
            else:
                logger.error("Exception in ASGI lifespan", exc_info=exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if not self.startup_done.done():
                self.supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported (app returned); serving without it.")
                self.startup_done.set_result(None)
            if not self.shutdown_done.done():
                self.shutdown_done.set_result(None)

    async def _send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self.startup_done.set_result(None)
        elif kind == "lifespan.startup.failed":
            self.startup_done.set_result(message.get("message", "") or "lifespan startup failed")
        elif kind == "lifespan.shutdown.complete":
            self.shutdown_done.set_result(None)
        elif kind == "lifespan.shutdown.failed":
            logger.error("Lifespan shutdown failed: %s", message.get("message", ""))
            self.shutdown_done.set_result(None)
        else:
            raise RuntimeError(f"Unexpected ASGI lifespan message '{kind}'.")

    async def startup(self):
        """None when the app is ready (or has no lifespan); the failure message otherwise."""
        self.task = self.loop.create_task(self._main())
        await self.queue.put({"type": "lifespan.startup"})
        return await self.startup_done

    async def shutdown(self):
        if not self.supported or self.task is None or self.task.done():
            return
        await self.queue.put({"type": "lifespan.shutdown"})
        await self.shutdown_done
