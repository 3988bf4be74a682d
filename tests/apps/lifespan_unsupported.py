"""An app that raises on the lifespan scope: the server must serve it without lifespan."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("this app only speaks http")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"served without lifespan"})
