#!/usr/bin/python3
"""What an option costs or saves: Mica serving the suite's app (GET /b10) with the options given
after `--` and with --against (default: none), alternated over several rounds, wrk -t1; requests/s,
the server's CPU per request and the app thread's (mica-python, or the mica-wsgi-N threads), and the
median ratios.

    bench/options.py -- --access-log
    bench/options.py --interface wsgi -- --metrics --metrics-port 0
    bench/options.py --against="--task-impl asyncio" -- --task-impl rust
    bench/options.py [--interface asgi|rsgi|wsgi] [--duration 10] [--connections 128] [--rounds 3] -- OPTIONS

Needs: wrk (apt).
"""

import argparse
import os
import shlex
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MICA_APPS, build_mica, error_text, free_port, measure, mica  # noqa: E402


def serve(options, interface, duration, connections):
    port = free_port()
    app, thread = MICA_APPS[interface]
    name = " ".join(["mica", *options])
    return measure(name, mica(port, interface, app, *options), f"http://127.0.0.1:{port}/b10", duration, connections,
                   python_thread=thread)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("options", nargs="+", help="the options measured, after --")
    parser.add_argument("--against", default="", help="the options compared with, as one shell-quoted string (default: none)")
    parser.add_argument("--interface", choices=sorted(MICA_APPS), default="asgi")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    options, against = args.options, shlex.split(args.against)

    build_mica()
    rows, ratios = [], {"requests/s": [], "server CPU per request": [], "app thread CPU per request": []}
    for n in range(args.rounds):
        # Alternate which goes first, so a machine that slows down during a round favours neither.
        first, second = (options, against) if n % 2 == 0 else (against, options)
        results = {tuple(first): serve(first, args.interface, args.duration, args.connections)}
        results[tuple(second)] = serve(second, args.interface, args.duration, args.connections)
        a, b = results[tuple(options)], results[tuple(against)]
        ratios["requests/s"].append(a["rps"] / b["rps"])
        ratios["server CPU per request"].append(a["cpu_us"] / b["cpu_us"])
        ratios["app thread CPU per request"].append(a["python_us"] / b["python_us"])
        rows += [(a, b["rps"]), (b, b["rps"])]

    print(f"\n{args.interface.upper()} GET /b10, wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print(f"| server | requests/s | ratio to `{' '.join(against) or 'no option'}` | server CPU µs/req | app thread µs/req | errors |")
    print("|---|---|---|---|---|---|")
    for r, base in rows:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['cpu_us']:.1f} | {r['python_us']:.1f} | {error_text(r)} |")
    print("\nmedian ratios, " + shlex.join(options) + " to " + (shlex.join(against) or "no option") + ": "
          + ", ".join(f"{what} {statistics.median(values):.3f}" for what, values in ratios.items()))


if __name__ == "__main__":
    sys.exit(main())
