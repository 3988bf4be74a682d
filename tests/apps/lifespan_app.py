"""Lifespan: startup and shutdown print a line (stdout, flushed) and startup fills the state."""

import json

STARTUP_CALLED = False


async def app(scope, receive, send):
    global STARTUP_CALLED
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                STARTUP_CALLED = True
                scope["state"]["db"] = "connected"
                print("LIFESPAN STARTUP", flush=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print("LIFESPAN SHUTDOWN", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        data = json.dumps({"startup_called": STARTUP_CALLED, "has_state": "state" in scope,
                           "state": scope.get("state"), "root_path": scope.get("root_path")}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})
