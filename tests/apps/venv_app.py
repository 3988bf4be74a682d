"""Says which Python environment serves it: sys.prefix, and where `mica` (the package the worker
provides `mica.rsgi` in) comes from. Served from a virtualenv by the Python package tests."""

import json
import sys

import mica


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = json.dumps({"prefix": sys.prefix, "mica": mica.__file__, "api": hasattr(mica, "Mica"),
                       "rsgi": hasattr(mica, "rsgi")}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
