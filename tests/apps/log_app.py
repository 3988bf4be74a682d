"""ASGI app for --log-config: logs through its own logger on every request; /boom raises."""

import logging

log = logging.getLogger("myapp")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    log.warning("app saw %s", scope["path"])
    if scope["path"] == "/boom":
        raise RuntimeError("boom for the log")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
