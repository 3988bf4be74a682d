"""Answers with the environment variables named in the query string, as JSON (null when unset)."""

import json
import os
from urllib.parse import parse_qs


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    names = parse_qs(scope["query_string"].decode())["name"]
    body = json.dumps({name: os.environ.get(name) for name in names}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
