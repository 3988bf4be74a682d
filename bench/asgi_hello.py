#!/usr/bin/python3
"""Side by side: the raw ASGI "hello" app under Mica and under uvicorn (httptools + uvloop).

For each server, in one run: requests/s (wrk -t1 -c128, pinned to the last core), total server CPU
per request, and for Mica the `mica-python` thread's CPU per request (from /proc/PID/task/TID/stat
before and after). Also Mica's idle worker RSS and the time from `./mica ...` to the first 200.

    bench/asgi_hello.py [--duration 10] [--connections 128]

Needs: wrk, python3-uvicorn, python3-httptools, python3-uvloop (apt).
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PYTHON, ROOT, error_text, free_port, measure  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the servers this many times and report the median ratio")
    args = parser.parse_args()

    subprocess.run([os.path.join(ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)  # build first
    rows, ratios, python_us = [], [], []
    for _ in range(args.rounds):
        port = free_port()
        mica = measure(
            "mica", [os.path.join(ROOT, "mica"), "--python", PYTHON, "--interface", "asgi", "--port", str(port),
                     "--log-level", "warning", "hello_asgi:app"],
            f"http://127.0.0.1:{port}/", args.duration, args.connections, python_thread="mica-python")
        port = free_port()
        uvicorn = measure(
            "uvicorn (httptools+uvloop)", [PYTHON, "-m", "uvicorn", "--port", str(port), "--http", "httptools",
                                            "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
                                            "hello_asgi:app"],
            f"http://127.0.0.1:{port}/", args.duration, args.connections)
        ratios.append(mica["rps"] / uvicorn["rps"])
        python_us.append(mica["python_us"])
        rows += [(mica, uvicorn["rps"]), (uvicorn, uvicorn["rps"])]

    print(f"\nASGI hello, wrk -t1 -c{args.connections} -d{args.duration}s, {os.cpu_count()} cores, "
          f"{args.rounds} rounds (each: mica, then uvicorn)\n")
    print("| server | requests/s | ratio to uvicorn | server CPU µs/req | Python thread µs/req | idle RSS MiB | first 200 s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r, base in rows:
        py = f"{r['python_us']:.1f}" if r["python_us"] is not None else "-"
        errors = error_text(r)
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['cpu_us']:.1f} | {py} | "
              f"{r['idle_rss']:.1f} | {r['first_200']:.2f} | {errors} |")
    print(f"\nmedian ratio mica/uvicorn: {statistics.median(ratios):.2f}; "
          f"median mica-python µs/req: {statistics.median(python_us):.1f}")


if __name__ == "__main__":
    sys.exit(main())
