"""The app behind --static-path-*: it answers every request itself, recognisably, and records
every request it sees, so that the static file tests can tell a file Mica served from the app's
answer, and prove that a static request never entered Python.

GET /seen  -> JSON list of "METHOD raw_path?query" (WSGI: PATH_INFO for raw_path) for every
              request this app saw before (in order; /seen itself is not recorded)
Any other  -> 200 text/plain "APP METHOD path" (ASGI) or "WSGI APP METHOD path" (WSGI)

`app` is ASGI, `wsgi_app` is WSGI (each with its own record; one worker).
"""

import json

_seen = []
_wsgi_seen = []


def _record(record, method, raw_path, query):
    record.append(f"{method} {raw_path}" + (f"?{query}" if query else ""))


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/seen":
        body = json.dumps(_seen).encode()
        content_type = b"application/json"
    else:
        _record(_seen, scope["method"], scope["raw_path"].decode("latin-1"), scope["query_string"].decode("latin-1"))
        body = f"APP {scope['method']} {scope['path']}".encode()
        content_type = b"text/plain"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass
    path = environ.get("PATH_INFO", "")
    if path == "/seen":
        body = json.dumps(_wsgi_seen).encode()
        content_type = "application/json"
    else:
        _record(_wsgi_seen, environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""))
        body = f"WSGI APP {environ['REQUEST_METHOD']} {path}".encode()
        content_type = "text/plain"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
