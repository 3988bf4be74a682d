"""The WSGI app bench/soak.py drives (the HTTP routes of soak_asgi.py; WSGI has no websockets).

GET  /hello                 "Hello, world!"
POST /upload                reads wsgi.input in 64 KiB pieces; answers "<length> <sha256>"
GET  /stream?n=N&size=S     a generator of N chunks of S bytes
"""

import hashlib
from urllib.parse import parse_qs

TEXT = [("Content-Type", "text/plain")]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/upload":
        digest = hashlib.sha256()
        length = 0
        while chunk := environ["wsgi.input"].read(65536):
            digest.update(chunk)
            length += len(chunk)
        start_response("200 OK", TEXT)
        return [f"{length} {digest.hexdigest()}".encode()]
    if path == "/stream":
        q = parse_qs(environ["QUERY_STRING"])
        start_response("200 OK", TEXT)
        return stream(int(q["n"][0]), int(q["size"][0]))
    start_response("200 OK", TEXT)
    return [b"Hello, world!"]


def stream(n, size):
    chunk = b"s" * size
    for _ in range(n):
        yield chunk
