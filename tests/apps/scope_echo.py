"""Raw ASGI app that answers every request with its scope as JSON.

Bytes are decoded as latin-1 (so every byte survives), tuples become lists, and `types` gives the
Python type name of every scope value so that tests can tell bytes from str.

Lifespan puts {"greeting": ..., "answer": 42} in the state. A request to a path ending in
/mutate-state changes its own copy of the state; the next request must not see that change.
"""

import json


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def _lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["greeting"] = "hello from lifespan"
            scope["state"]["answer"] = 42
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    first = await receive()
    body = first.get("body", b"")
    more = first.get("more_body", False)
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)

    state_before = _plain(dict(scope["state"])) if "state" in scope else None
    if scope["path"].endswith("/mutate-state"):
        scope["state"]["added_by_request"] = True
        scope["state"]["greeting"] = "changed by request"

    payload = {
        "scope": _plain(scope),
        "state_before": state_before,
        "types": {k: type(v).__name__ for k, v in scope.items()},
        "header_types": sorted({"%s[%s,%s]" % (type(h).__name__, type(h[0]).__name__, type(h[1]).__name__)
                                for h in scope["headers"]}),
        "first_receive": {"type": first["type"], "more_body": first.get("more_body", False),
                          "body_type": type(first.get("body", b"")).__name__},
        "body": body.decode("latin-1"),
    }
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
