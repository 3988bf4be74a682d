#!/usr/bin/python3
"""What the access log costs: Mica serving the suite's ASGI app (GET /b10) with and without --access-log
(default format, lines to a file), alternated over several rounds, wrk -t1 -c128.

    bench/access_log.py [--duration 10] [--connections 128] [--rounds 3]

Needs: wrk (apt).
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build_mica, error_text, free_port, measure, mica  # noqa: E402


def serve(access_log, duration, connections):
    port = free_port()
    extra = ["--access-log"] if access_log else []
    return measure("mica --access-log" if access_log else "mica", mica(port, "asgi", "bench_asgi:app", *extra),
                   f"http://127.0.0.1:{port}/b10", duration, connections, python_thread="mica-python")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    build_mica()
    rows, ratios = [], []
    for _ in range(args.rounds):
        on = serve(True, args.duration, args.connections)
        off = serve(False, args.duration, args.connections)
        ratios.append(on["rps"] / off["rps"])
        rows += [(on, off["rps"]), (off, off["rps"])]

    print(f"\nASGI GET /b10, wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds\n")
    print("| server | requests/s | ratio to no access log | server CPU µs/req | Python thread µs/req | errors |")
    print("|---|---|---|---|---|---|")
    for r, base in rows:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['cpu_us']:.1f} | {r['python_us']:.1f} | {error_text(r)} |")
    print(f"\nmedian ratio with/without access log: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    sys.exit(main())
