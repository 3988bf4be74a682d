#!/usr/bin/python3
"""Soak: hours of a server's life in minutes. Mica serves bench/apps/soak_asgi.py (or soak_wsgi.py)
under a steady mix of every kind of traffic, and the run checks that nothing failed and nothing
grows: the RSS and open descriptors of the master and each worker are sampled every --sample
seconds, and after --warmup the median of the last three samples must stay within --tolerance
percent of the median of the first three.

The mix, each kind run by its own client loops for the whole run:
  keep-alive   GET /hello, many requests per connection
  new-conn     GET /hello with Connection: close, a new connection each
  upload       POST /upload of 256 KiB (Content-Length, or chunked every other time), sha256 checked
  stream       GET /stream of 64 chunks of 4 KiB, length checked
  websocket    (ASGI) connect, echo 50 text and binary messages, close

Every response is checked; any failure fails the run. Exit 0 on PASS, 1 on FAIL.

    bench/soak.py                         # ASGI, 10 minutes, chart under bench/results/
    bench/soak.py --interface wsgi
    bench/soak.py --duration 60 --warmup 20 --sample 5 --no-chart   # the test suite's version
"""

import argparse
import asyncio
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import harness

UPLOAD = os.urandom(256 * 1024)
UPLOAD_ANSWER = f"{len(UPLOAD)} {hashlib.sha256(UPLOAD).hexdigest()}".encode()
STREAM_CHUNKS, STREAM_SIZE = 64, 4096
WS_MESSAGES = 50


class Failed(Exception):
    pass


class Tally:
    """Successes and failures per kind of traffic; the first failures described."""

    def __init__(self):
        self.ok = {}
        self.failed = {}
        self.first_failures = []

    def success(self, kind):
        self.ok[kind] = self.ok.get(kind, 0) + 1

    def failure(self, kind, error):
        self.failed[kind] = self.failed.get(kind, 0) + 1
        if len(self.first_failures) < 10:
            self.first_failures.append(f"{time.strftime('%H:%M:%S')} {kind}: {type(error).__name__}: {error}")


async def read_response(reader):
    """(status, headers, body) of one HTTP/1.1 response: Content-Length, chunked, or to the end."""
    status_line = await reader.readline()
    if not status_line:
        raise Failed("connection closed before a response")
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while await reader.readline() not in (b"\r\n", b""):
            pass
        body = b"".join(parts)
    else:
        body = await reader.read()
    return status, headers, body


def request(method, target, headers=(), body=b""):
    lines = [f"{method} {target} HTTP/1.1", "Host: soak", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def expect(status, body, wanted_body=None, wanted_length=None):
    if status != 200:
        raise Failed(f"status {status}: {body[:200]!r}")
    if wanted_body is not None and body != wanted_body:
        raise Failed(f"unexpected body {body[:200]!r}")
    if wanted_length is not None and len(body) != wanted_length:
        raise Failed(f"body of {len(body)} bytes, expected {wanted_length}")


async def connection_loop(kind, port, stop, tally, exchange, keep_alive):
    """Runs `exchange(reader, writer)` over and over: on one connection while it stays open
    (keep_alive), else on a new connection each time."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            tally.failure(kind, e)
            await asyncio.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                closes = await exchange(reader, writer)
                tally.success(kind)
                if closes or not keep_alive:
                    break
        except (OSError, Failed, asyncio.IncompleteReadError, ValueError, IndexError) as e:
            tally.failure(kind, e)
        finally:
            writer.close()


async def hello(reader, writer, close=False):
    writer.write(request("GET", "/hello", ["Connection: close"] if close else []))
    status, headers, body = await read_response(reader)
    expect(status, body, b"Hello, world!")
    return headers.get("connection", "").lower() == "close"


def upload_exchange():
    turn = 0

    async def exchange(reader, writer):
        nonlocal turn
        turn += 1
        if turn % 2:
            writer.write(request("POST", "/upload", [f"Content-Length: {len(UPLOAD)}"], UPLOAD))
        else:
            writer.write(request("POST", "/upload", ["Transfer-Encoding: chunked"]))
            for i in range(0, len(UPLOAD), 65536):
                piece = UPLOAD[i:i + 65536]
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        status, headers, body = await read_response(reader)
        expect(status, body, UPLOAD_ANSWER)
        return headers.get("connection", "").lower() == "close"
    return exchange


async def stream_exchange(reader, writer):
    writer.write(request("GET", f"/stream?n={STREAM_CHUNKS}&size={STREAM_SIZE}"))
    status, headers, body = await read_response(reader)
    expect(status, body, wanted_length=STREAM_CHUNKS * STREAM_SIZE)
    return headers.get("connection", "").lower() == "close"


async def websocket_loop(port, stop, tally):
    import websockets
    while not stop.is_set():
        try:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
                for i in range(WS_MESSAGES):
                    message = f"message {i}" if i % 2 else os.urandom(1024)
                    await ws.send(message)
                    if await ws.recv() != message:
                        raise Failed(f"echo {i} differs")
            tally.success("websocket")
        except (OSError, Failed, websockets.exceptions.WebSocketException) as e:
            tally.failure("websocket", e)


KINDS = ["keep-alive", "new-conn", "upload", "stream", "websocket"]


async def drive(port, duration, kinds, tally):
    stop = asyncio.Event()
    loops = []
    if "keep-alive" in kinds:
        loops += [connection_loop("keep-alive", port, stop, tally, hello, keep_alive=True) for _ in range(8)]
    if "new-conn" in kinds:
        loops += [connection_loop("new-conn", port, stop, tally, lambda r, w: hello(r, w, close=True), keep_alive=False) for _ in range(4)]
    if "upload" in kinds:
        loops += [connection_loop("upload", port, stop, tally, upload_exchange(), keep_alive=True) for _ in range(2)]
    if "stream" in kinds:
        loops += [connection_loop("stream", port, stop, tally, stream_exchange, keep_alive=True) for _ in range(2)]
    if "websocket" in kinds:
        loops += [websocket_loop(port, stop, tally) for _ in range(2)]
    tasks = [asyncio.create_task(loop) for loop in loops]
    await asyncio.sleep(duration)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sampler(master, period, started, samples, done):
    """Every `period` s: (seconds since start, role, RSS MiB, open fds) of the master and each worker."""
    while not done.wait(period):
        at = time.monotonic() - started
        for role, pid in [("master", master)] + [(f"worker pid {p}", p) for p in harness.children(master)]:
            try:
                samples.append((at, role, harness.rss_mib(pid), fd_count(pid)))
            except (FileNotFoundError, ProcessLookupError):
                pass


def verdict(samples, warmup, tolerance):
    """Per process and measure: (role, measure, first, last, change %, ok) over the samples after warm-up."""
    rows = []
    for role in dict.fromkeys(s[1] for s in samples):
        series = [s for s in samples if s[1] == role and s[0] >= warmup]
        for index, measure in ((2, "RSS MiB"), (3, "open fds")):
            values = [s[index] for s in series]
            if len(values) < 6:
                rows.append((role, measure, None, None, None, False))
                continue
            first, last = statistics.median(values[:3]), statistics.median(values[-3:])
            change = (last / first - 1) * 100
            rows.append((role, measure, first, last, change, abs(change) <= tolerance))
    return rows


def chart(samples, warmup, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, (rss, fds) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for role in dict.fromkeys(s[1] for s in samples):
        series = [s for s in samples if s[1] == role]
        rss.plot([s[0] for s in series], [s[2] for s in series], label=role)
        fds.plot([s[0] for s in series], [s[3] for s in series], label=role)
    for axis, label in ((rss, "RSS (MiB)"), (fds, "open fds")):
        axis.axvline(warmup, color="grey", linestyle=":", label="end of warm-up")
        axis.set_ylabel(label)
        axis.set_ylim(bottom=0)
        axis.legend(loc="lower right", fontsize="small")
    fds.set_xlabel("seconds")
    rss.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interface", choices=["asgi", "wsgi"], default="asgi")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the baseline (default 60)")
    parser.add_argument("--sample", type=float, default=10, help="seconds between samples (default 10)")
    parser.add_argument("--tolerance", type=float, default=5, help="percent RSS and fds may move (default 5)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"the kinds of traffic, comma-separated (default all: {','.join(KINDS)}; wsgi has no websocket)")
    parser.add_argument("--chart", action=argparse.BooleanOptionalAction, default=True,
                        help="write a PNG chart and the samples under bench/results/ (default on)")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k and not (k == "websocket" and args.interface == "wsgi")]
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")

    subprocess.run([os.path.join(harness.ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)  # build first
    port = harness.free_port()
    log = tempfile.NamedTemporaryFile(prefix="mica-soak-", suffix=".log", delete=False)
    argv = [os.path.join(harness.ROOT, "mica"), "--python", harness.PYTHON, "--interface", args.interface,
            "--port", str(port), "--workers", str(args.workers), f"soak_{args.interface}:app"]
    server = subprocess.Popen(argv, cwd=harness.APPS, stdout=log, stderr=log)
    tally = Tally()
    samples = []
    done = threading.Event()
    try:
        harness.wait_for_200(f"http://127.0.0.1:{port}/hello")
        started = time.monotonic()
        watch = threading.Thread(target=sampler, args=(server.pid, args.sample, started, samples, done), daemon=True)
        watch.start()
        asyncio.run(drive(port, args.duration, kinds, tally))
        done.set()
        watch.join()
    finally:
        done.set()
        server.send_signal(signal.SIGINT)
        try:
            exit_code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            exit_code = "killed after 30 s"

    rows = verdict(samples, args.warmup, args.tolerance)
    print(f"soak: Mica {args.interface}, {args.workers} workers, {args.duration:g} s of {', '.join(kinds)}, "
          f"samples every {args.sample:g} s, baseline after {args.warmup:g} s, tolerance {args.tolerance:g}%")
    print("requests: " + ", ".join(f"{k} {tally.ok.get(k, 0)} ok / {tally.failed.get(k, 0)} failed"
                                   for k in dict.fromkeys([*tally.ok, *tally.failed])))
    for line in tally.first_failures:
        print("  failure: " + line)
    print(f"{'process':<20} {'measure':<9} {'first':>8} {'last':>8} {'change':>8}")
    for role, measure, first, last, change, ok in rows:
        if first is None:
            print(f"{role:<20} {measure:<9} too few samples after the warm-up")
        else:
            print(f"{role:<20} {measure:<9} {first:8.1f} {last:8.1f} {change:+7.1f}% {'' if ok else '  <- out of bounds'}")
    print(f"server log: {log.name}; exit code {exit_code}")

    if args.chart:
        results = os.path.join(harness.ROOT, "bench", "results")
        os.makedirs(results, exist_ok=True)
        stem = os.path.join(results, f"soak-{args.interface}")
        with open(stem + ".csv", "w") as f:
            f.write("seconds,process,rss_mib,open_fds\n")
            f.writelines(f"{at:.1f},{role},{rss:.1f},{fds}\n" for at, role, rss, fds in samples)
        chart(samples, args.warmup, stem + ".png", f"Mica soak, {args.interface}: {sum(tally.ok.values())} exchanges, "
              f"{sum(tally.failed.values())} failed")
        print(f"chart: {stem}.png, samples: {stem}.csv")

    passed = not tally.failed and sum(tally.ok.values()) > 0 and exit_code == 0 and rows and all(r[5] for r in rows)
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
