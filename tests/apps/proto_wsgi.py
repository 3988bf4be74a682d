"""WSGI app for the protocol tests: answers every request with the str values of its environ as JSON."""

import json


def app(environ, start_response):
    plain = {k: v for k, v in environ.items() if isinstance(v, str)}
    data = json.dumps(plain).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]
