#!/usr/bin/python3
"""Side by side: a 10 KiB static file, served by Mica (--static-path-mount, no Python involved) and
by uvicorn (httptools + uvloop) with Starlette's StaticFiles. wrk -t1 -c64 pinned to the last core,
1 worker each, one run.

    bench/static_file.py [--duration 10]

Needs: wrk, python3-uvicorn, python3-httptools, python3-uvloop, python3-starlette (apt).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import APPS, PYTHON, build_mica, error_text, free_port, measure, mica  # noqa: E402

SERVERS = {
    "mica": lambda port: mica(port, "asgi", "bench_asgi:app", "--static-path-mount", os.path.join(APPS, "static")),
    "uvicorn + Starlette StaticFiles": lambda port: [PYTHON, "-m", "uvicorn", "--port", str(port), "--http", "httptools",
                                                     "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
                                                     "static_starlette:app"],
}
BASELINE = "uvicorn + Starlette StaticFiles"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    build_mica()
    print(f"\nStatic 10 KiB file, wrk -t1 -c{args.connections} -d{args.duration}s, {os.cpu_count()} cores, 1 worker each\n")
    print("| server | requests/s | ratio to uvicorn | p99 ms | server CPU µs/req | errors |")
    print("|---|---|---|---|---|---|")
    results = []
    for name, argv in SERVERS.items():
        port = free_port()
        results.append(measure(name, argv(port), f"http://127.0.0.1:{port}/static/10k.txt", args.duration, args.connections))
    base = next(r["rps"] for r in results if r["name"] == BASELINE)
    for r in results:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['p99_ms']:.1f} | {r['cpu_us']:.1f} | {error_text(r)} |")


if __name__ == "__main__":
    sys.exit(main())
