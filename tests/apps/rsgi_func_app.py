"""A plain RSGI function app, `async def app(scope, protocol)`, for --interface auto detection.

Any HTTP request: JSON {"via": "function", "proto", "http_version", "path", "body"} (the body read
with `await protocol()`, as latin-1). A websocket: accept, echo one text message, close.
"""

import json


async def app(scope, protocol):
    if scope.proto == "ws":
        transport = await protocol.accept()
        message = await transport.receive()
        await transport.send_str(f"function echo: {message.data}")
        protocol.close(1000)
        return
    body = await protocol()
    protocol.response_str(200, [("content-type", "application/json")], json.dumps({
        "via": "function",
        "proto": scope.proto,
        "http_version": scope.http_version,
        "path": scope.path,
        "body": body.decode("latin-1"),
    }))
