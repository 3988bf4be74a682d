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


def http_dispatcher(app, loop):
    """The function the C# side calls for each new request (scope already built)."""
    create_task = loop.create_task

    def dispatch(handle, scope, body, more_body):
        create_task(run_http(app, scope, HttpProtocol(handle, loop, body, more_body)))

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


async def nothing():
    """Shutdown for an app served without lifespan."""
