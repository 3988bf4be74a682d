"""What the app saw of each request, for the wire-level tests (tests/corpus, the fuzzer).

Both interfaces answer alike: 200, the request body as the response body, and one header
`x-echo: METHOD TARGET len=N cl=CL te=TE` naming the method, the target (path and query), the body
length read, and the Content-Length and Transfer-Encoding headers the app was given ("-" when absent,
values joined with "|" when repeated), so that a test can tell exactly which request reached the app
and whether its framing was ambiguous. /noread answers without reading the body. With "announce" in
the query, the app prints `reading the body of METHOD TARGET` (flushed) before it reads the body, so
that a test can send the rest of a request once the app is waiting for it.

`app` is ASGI, `wsgi` is WSGI.
"""

from urllib.parse import quote


def _target(path, query):
    """The path and query percent-encoded where they hold what a header value cannot."""
    return quote(path, safe="/*:@!$&'()+,;=") + ("?" + quote(query, safe="/*:@!$&'()+,;=?%") if query else "")


def _echo(method, target, length, cl, te):
    return f"{method} {target} len={length} cl={cl} te={te}".encode("latin-1")


def _announce(method, target, query):
    if "announce" in query:
        print(f"reading the body of {method} {target}", flush=True)


def _joined(values):
    return "|".join(values) if values else "-"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return   # no lifespan: served without it
    cl = [v.decode("latin-1") for k, v in scope["headers"] if k == b"content-length"]
    te = [v.decode("latin-1") for k, v in scope["headers"] if k == b"transfer-encoding"]
    query = scope["query_string"].decode("latin-1")
    target = _target(scope["path"], query)
    body = bytearray()
    if scope["path"] != "/noread":
        _announce(scope["method"], target, query)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-echo", _echo(scope["method"], target, len(body), _joined(cl), _joined(te))),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": bytes(body)})


def wsgi(environ, start_response):
    cl = environ.get("CONTENT_LENGTH")
    te = environ.get("HTTP_TRANSFER_ENCODING")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    target = _target(path.encode("latin-1").decode("utf-8", "replace"), query)
    body = b""
    if path != "/noread":
        _announce(environ["REQUEST_METHOD"], target, query)
        body = environ["wsgi.input"].read()
    start_response("200 OK", [("X-Echo", _echo(environ["REQUEST_METHOD"], target, len(body), cl or "-", te or "-").decode("latin-1")),
                              ("Content-Length", str(len(body)))])
    return [body]
