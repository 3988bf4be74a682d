"""The WSGI app of the benchmark suite (bench/suite.py), served by every WSGI server in it.

The routes of bench_asgi.py, the WSGI way: /io10 and /io100 block their thread in time.sleep (the
server's threads are what lets other requests go on meanwhile), /file answers with
`wsgi.file_wrapper`, and there is no /ws.
"""

import json
import os
import time

FILE = os.environ.get("BENCH_FILE", "")


def plain(start_response, body, content_type="text/plain"):
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def fixed(size):
    body = b"x" * size
    return lambda environ, start_response: plain(start_response, body)


def echo(environ, start_response):
    return plain(start_response, environ["wsgi.input"].read(), "application/octet-stream")


def json_route(environ, start_response):
    return plain(start_response, json.dumps({"message": "Hello, world!"}).encode(), "application/json")


def sleeping(ms):
    seconds = ms / 1000
    body = b"x" * 10

    def route(environ, start_response):
        time.sleep(seconds)
        return plain(start_response, body)

    return route


def file_route(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(os.path.getsize(FILE)))])
    return environ["wsgi.file_wrapper"](open(FILE, "rb"))


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Length", "0")])
    return [b""]


ROUTES = {
    "/b10": fixed(10), "/b1k": fixed(1024), "/b10k": fixed(10 * 1024), "/b100k": fixed(100 * 1024),
    "/echo": echo, "/json": json_route, "/io10": sleeping(10), "/io100": sleeping(100), "/file": file_route,
}


def app(environ, start_response):
    return ROUTES.get(environ["PATH_INFO"], not_found)(environ, start_response)
