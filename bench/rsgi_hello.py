#!/usr/bin/python3
"""Side by side: Mica serving the raw "hello" app over RSGI and over ASGI, in one run.

RSGI exists to be cheaper than ASGI (no message dicts, no awaits to respond); this shows by how
much: requests/s (wrk -t1 -c128, pinned to the last core), server CPU per request, and the
`mica-python` thread's CPU per request for each interface, alternated over several rounds.

    bench/rsgi_hello.py [--duration 10] [--connections 128] [--rounds 3]

Needs: wrk (apt).
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PYTHON, ROOT, error_text, free_port, measure  # noqa: E402


def serve(interface, app, duration, connections):
    port = free_port()
    return measure(
        f"mica {interface}", [os.path.join(ROOT, "mica"), "--python", PYTHON, "--interface", interface,
                              "--port", str(port), "--log-level", "warning", app],
        f"http://127.0.0.1:{port}/", duration, connections, python_thread="mica-python")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternate the interfaces this many times and report the median ratio")
    args = parser.parse_args()

    subprocess.run([os.path.join(ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)  # build first
    rows, ratios, rsgi_us, asgi_us = [], [], [], []
    for _ in range(args.rounds):
        rsgi = serve("rsgi", "hello_rsgi:app", args.duration, args.connections)
        asgi = serve("asgi", "hello_asgi:app", args.duration, args.connections)
        ratios.append(rsgi["rps"] / asgi["rps"])
        rsgi_us.append(rsgi["python_us"])
        asgi_us.append(asgi["python_us"])
        rows += [(rsgi, asgi["rps"]), (asgi, asgi["rps"])]

    print(f"\nhello, wrk -t1 -c{args.connections} -d{args.duration}s, {os.cpu_count()} cores, "
          f"{args.rounds} rounds (each: rsgi, then asgi)\n")
    print("| interface | requests/s | ratio to ASGI | server CPU µs/req | Python thread µs/req | errors |")
    print("|---|---|---|---|---|---|")
    for r, base in rows:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['cpu_us']:.1f} | "
              f"{r['python_us']:.1f} | {error_text(r)} |")
    print(f"\nmedian ratio rsgi/asgi: {statistics.median(ratios):.2f}; median mica-python µs/req: "
          f"rsgi {statistics.median(rsgi_us):.1f}, asgi {statistics.median(asgi_us):.1f}")


if __name__ == "__main__":
    sys.exit(main())
