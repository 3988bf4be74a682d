"""The raw RSGI "hello" app: the same response as hello_asgi.py."""

HEADERS = [("content-type", "text/plain")]


async def app(scope, protocol):
    protocol.response_bytes(200, HEADERS, b"Hello, world!")
