#!/usr/bin/python3
"""How evenly do N workers share the load on the master's one listening socket?

Runs Mica with --workers N on the suite's ASGI app (GET /b10), drives it with wrk (keep-alive, then a new
connection per request), and prints each worker's share of the CPU the workers used meanwhile.

    bench/worker_spread.py [--workers 4] [--duration 10]
"""

import argparse
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import APPS, build_mica, children, cpu_ticks, free_port, mica, wait_for_200  # noqa: E402


def run(workers, duration, extra_wrk):
    port = free_port()
    url = f"http://127.0.0.1:{port}/b10"
    proc = subprocess.Popen(mica(port, "asgi", "bench_asgi:app", "--workers", str(workers)), cwd=APPS, stderr=subprocess.DEVNULL)
    try:
        wait_for_200(url)
        deadline = time.monotonic() + 30
        while len(children(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
        pids = children(proc.pid)
        before = {p: cpu_ticks(f"/proc/{p}/stat") for p in pids}
        subprocess.run(["wrk", "-t1", "-c64", f"-d{duration}s", *extra_wrk, url], check=True, stdout=subprocess.DEVNULL)
        used = {p: cpu_ticks(f"/proc/{p}/stat") - before[p] for p in pids}
        total = sum(used.values()) or 1
        return sorted((100 * u / total for u in used.values()), reverse=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    build_mica()
    print(f"\nShare of worker CPU per worker, {args.workers} workers, wrk -t1 -c64 -d{args.duration}s\n")
    print("| clients | " + " | ".join(f"worker {i + 1}" for i in range(args.workers)) + " |")
    print("|---|" + "---|" * args.workers)
    for name, extra in (("keep-alive", []), ("new connection per request", ["-H", "Connection: close"])):
        shares = run(args.workers, args.duration, extra)
        print(f"| {name} | " + " | ".join(f"{s:.0f}%" for s in shares) + " |")


if __name__ == "__main__":
    sys.exit(main())
