"""Which worker answered, and ways for a worker to die or to refuse to stop (master process tests).

GET /pid          -> the worker's pid as text
GET /env?name=X   -> the worker's os.environ[X] as text, or "<unset>"
GET /exit?code=N  -> the worker ends at once with os._exit(N) (no response)
GET /segfault     -> the worker crashes as a broken C extension would: a read of address 0 (ctypes)
GET /block?s=N    -> blocks the event loop for N seconds (time.sleep), then "ok"
Any other path    -> "ok"

Import: when the environment variable PIDAPP_FAIL_MARKER names a file that exists, importing this
module fails (a worker that cannot start any more, e.g. after a bad deploy).

Lifespan: startup prints "PIDAPP STARTED <pid>"; shutdown prints "PIDAPP SHUTDOWN <pid>" and, when
the environment variable PIDAPP_STUCK_SHUTDOWN is set, then blocks the event loop for an hour
(a worker that refuses to stop).
"""

import os
import time
from urllib.parse import parse_qs

_marker = os.environ.get("PIDAPP_FAIL_MARKER")
if _marker and os.path.exists(_marker):
    raise RuntimeError(f"marker file {_marker} exists: refusing to start")


async def _text(send, body, status=200):
    body = body.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            print(f"PIDAPP STARTED {os.getpid()}", flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print(f"PIDAPP SHUTDOWN {os.getpid()}", flush=True)
            if os.environ.get("PIDAPP_STUCK_SHUTDOWN"):
                time.sleep(3600)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    q = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    path = scope["path"]
    if path == "/pid":
        await _text(send, str(os.getpid()))
    elif path == "/env":
        await _text(send, os.environ.get(q["name"], "<unset>"))
    elif path == "/exit":
        print(f"PIDAPP EXIT {os.getpid()}", flush=True)
        os._exit(int(q.get("code", "3")))
    elif path == "/segfault":
        import ctypes
        print(f"PIDAPP SEGFAULT {os.getpid()}", flush=True)
        ctypes.string_at(0)
    elif path == "/block":
        time.sleep(float(q.get("s", "2")))
        await _text(send, "ok")
    else:
        await _text(send, "ok")
