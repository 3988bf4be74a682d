#!/usr/bin/python3
"""WebSocket echo load, the suite's counterpart of wrk for WebSockets: messages per second.

Opens N connections to a WebSocket echo endpoint, then for D seconds each connection sends a binary
message and waits for its echo before sending the next (N messages in flight, as wrk keeps N
requests in flight). Prints one JSON object: echoed messages, messages/s, p50/p99 round-trip time
(ms), and the errors (handshakes not answered 101, connections lost, echoes that differ).

    bench/ws_load.py ws://127.0.0.1:8000/ws [--connections 64] [--duration 10] [--size 64]

Written on asyncio streams' lower layer (a Protocol, frames built once, uvloop when installed) so
that the client, pinned to one core, costs far less per message than the servers it drives.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import struct
import sys
import time
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x2, 0x8, 0x9, 0xA


def client_frame(opcode, payload):
    """A final, masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class Stats:
    def __init__(self):
        self.round_trips = []          # seconds, one per echoed message while counting
        self.counting = False
        self.errors = {}

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1


class EchoConnection(asyncio.Protocol):
    """Handshake, then ping-pong: one message in flight, the next sent when its echo is back."""

    def __init__(self, host, path, payload, stats):
        self.key = base64.b64encode(os.urandom(16))
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        self.payload = payload
        self.frame = client_frame(OPCODE_BINARY, payload)
        self.stats = stats
        self.buffer = bytearray()
        self.opened = asyncio.get_running_loop().create_future()
        self.sending = False
        self.sent_at = 0.0
        self.transport = None
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))
        elif not self.closing:
            self.stats.error("connection lost")

    def data_received(self, data):
        self.buffer += data
        if not self.opened.done():
            self.read_handshake()
        else:
            self.read_frames()

    def read_handshake(self):
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self.buffer = bytes(self.buffer[:end]).decode("latin-1"), self.buffer[end + 4:]
        lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        expected = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
        if lines[0].split(" ")[1:2] != ["101"] or headers.get("sec-websocket-accept") != expected:
            self.opened.set_exception(ConnectionError(f"handshake answered {lines[0]!r}"))
            self.transport.close()
            return
        self.opened.set_result(None)

    def start(self):
        self.sending = True
        self.send()

    def send(self):
        self.sent_at = time.perf_counter()
        self.transport.write(self.frame)

    def read_frames(self):
        while len(self.buffer) >= 2:
            opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = struct.unpack_from("!H", self.buffer, 2)[0], 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = struct.unpack_from("!Q", self.buffer, 2)[0], 10
            if len(self.buffer) < offset + length:
                return
            payload = bytes(self.buffer[offset:offset + length])
            del self.buffer[:offset + length]
            self.on_frame(opcode, payload)

    def on_frame(self, opcode, payload):
        if opcode == OPCODE_PING:
            self.transport.write(client_frame(OPCODE_PONG, payload))
        elif opcode == OPCODE_CLOSE:
            if not self.closing:
                self.stats.error("closed by the server")
                self.closing = True
            self.transport.close()
        elif opcode != OPCODE_PONG:
            if payload != self.payload:
                self.stats.error("echo differs")
            if self.stats.counting:
                self.stats.round_trips.append(time.perf_counter() - self.sent_at)
            if self.sending:
                self.send()

    def close(self):
        self.sending = False
        if not self.closing and not self.transport.is_closing():
            self.closing = True
            self.transport.write(client_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))


async def run(url, connections, duration, size):
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    stats = Stats()
    payload = os.urandom(size)
    clients = []
    for _ in range(connections):
        try:
            _, client = await asyncio.wait_for(loop.create_connection(
                lambda: EchoConnection(parts.netloc, parts.path or "/", payload, stats), parts.hostname, parts.port), 5)
            await asyncio.wait_for(client.opened, 5)
            clients.append(client)
        except (OSError, asyncio.TimeoutError) as exc:
            stats.error(f"connect: {exc or type(exc).__name__}")
    for client in clients:
        client.start()
    await asyncio.sleep(min(0.5, duration / 10))           # every connection in its stride before counting
    stats.counting = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    stats.counting = False
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    deadline = time.monotonic() + 2
    while any(not c.transport.is_closing() for c in clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for client in clients:
        client.transport.abort()
    times = sorted(stats.round_trips)
    return {
        "messages": len(times),
        "rps": len(times) / elapsed,
        "p50_ms": statistics.median(times) * 1000 if times else None,
        "p99_ms": times[int(len(times) * 0.99)] * 1000 if times else None,
        "errors": stats.errors,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--size", type=int, default=64, help="bytes per message")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(run(args.url, args.connections, args.duration, args.size))))


if __name__ == "__main__":
    sys.exit(main())
