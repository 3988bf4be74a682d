"""The RSGI app of the benchmark suite (bench/suite.py): the routes of bench_asgi.py, the RSGI way
(/file by `response_file`). Imports from granian.rsgi, which Mica provides when Granian is absent,
so Granian can serve it unchanged."""

import asyncio
import json
import os

from granian.rsgi import WebsocketMessageType

FILE = os.environ.get("BENCH_FILE", "")
PLAIN = [("content-type", "text/plain")]


def fixed(size):
    body = b"x" * size

    async def route(scope, protocol):
        protocol.response_bytes(200, PLAIN, body)

    return route


async def echo(scope, protocol):
    protocol.response_bytes(200, [("content-type", "application/octet-stream")], await protocol())


async def json_route(scope, protocol):
    protocol.response_bytes(200, [("content-type", "application/json")], json.dumps({"message": "Hello, world!"}).encode())


def sleeping(ms):
    seconds = ms / 1000
    body = b"x" * 10

    async def route(scope, protocol):
        await asyncio.sleep(seconds)
        protocol.response_bytes(200, PLAIN, body)

    return route


async def file_route(scope, protocol):
    protocol.response_file(200, [("content-type", "application/octet-stream")], FILE)


async def not_found(scope, protocol):
    protocol.response_empty(404, [])


async def websocket_echo(scope, protocol):
    transport = await protocol.accept()
    while True:
        message = await transport.receive()
        if message.kind == WebsocketMessageType.bytes:
            await transport.send_bytes(message.data)
        elif message.kind == WebsocketMessageType.string:
            await transport.send_str(message.data)
        else:
            return


ROUTES = {
    "/b10": fixed(10), "/b1k": fixed(1024), "/b10k": fixed(10 * 1024), "/b100k": fixed(100 * 1024),
    "/echo": echo, "/json": json_route, "/io10": sleeping(10), "/io100": sleeping(100), "/file": file_route,
}


async def app(scope, protocol):
    if scope.proto == "ws":
        await websocket_echo(scope, protocol)
    else:
        await ROUTES.get(scope.path, not_found)(scope, protocol)
