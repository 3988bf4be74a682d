#!/usr/bin/python3
"""What --metrics costs per request: Mica serving the suite's app (GET /b10) with and without --metrics
(default scrape interval; nothing scrapes during the run), alternated over several rounds, wrk -t1.

    bench/metrics.py [--interface asgi|wsgi] [--duration 10] [--connections 128] [--rounds 3]

Needs: wrk (apt).
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build_mica, error_text, free_port, measure, mica  # noqa: E402

APPS = {"asgi": ("bench_asgi:app", "mica-python"), "wsgi": ("bench_wsgi:app", "mica-wsgi-")}


def serve(metrics, interface, duration, connections):
    port = free_port()
    app, thread = APPS[interface]
    extra = ["--metrics", "--metrics-port", "0"] if metrics else []
    return measure("mica --metrics" if metrics else "mica", mica(port, interface, app, *extra),
                   f"http://127.0.0.1:{port}/b10", duration, connections, python_thread=thread)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interface", choices=sorted(APPS), default="asgi")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    build_mica()
    rows, ratios, cpu_ratios = [], [], []
    for _ in range(args.rounds):
        on = serve(True, args.interface, args.duration, args.connections)
        off = serve(False, args.interface, args.duration, args.connections)
        ratios.append(on["rps"] / off["rps"])
        cpu_ratios.append(on["cpu_us"] / off["cpu_us"])
        rows += [(on, off["rps"]), (off, off["rps"])]

    print(f"\n{args.interface.upper()} GET /b10, wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds\n")
    print("| server | requests/s | ratio to no metrics | server CPU µs/req | app thread µs/req | errors |")
    print("|---|---|---|---|---|---|")
    for r, base in rows:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['cpu_us']:.1f} | {r['python_us']:.1f} | {error_text(r)} |")
    print(f"\nmedian ratio with/without metrics: requests/s {statistics.median(ratios):.3f}, "
          f"server CPU per request {statistics.median(cpu_ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
