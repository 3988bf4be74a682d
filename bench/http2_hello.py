#!/usr/bin/python3
"""Side by side: the raw ASGI "hello" app over cleartext HTTP/2 (prior knowledge) under Mica and hypercorn.

h2load with 100 concurrent streams per connection, 1 connection and then 8, pinned to the last
core, 1 worker each, one run: requests/s, ratio to hypercorn, mean time per request, server CPU
per request and Mica's `mica-python` share.

    bench/http2_hello.py [--duration 10]

Needs: nghttp2-client (h2load), python3-hypercorn, python3-uvloop (apt).
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PYTHON, ROOT, error_text, free_port, h2load, measure  # noqa: E402

SERVERS = {
    "mica": lambda port: [os.path.join(ROOT, "mica"), "--python", PYTHON, "--interface", "asgi", "--port", str(port),
                          "--log-level", "warning", "hello_asgi:app"],
    "hypercorn (uvloop)": lambda port: [PYTHON, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "-k", "uvloop",
                                        "--log-level", "warning", "hello_asgi:app"],
}
BASELINE = "hypercorn (uvloop)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()

    subprocess.run([os.path.join(ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)  # build first
    print(f"\nASGI hello over HTTP/2 (h2c), h2load -m100 -D{args.duration}, {os.cpu_count()} cores, 1 worker each\n")
    print("| connections × streams | server | requests/s | ratio to hypercorn | mean ms | server CPU µs/req | mica-python µs/req | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for connections in (1, 8):
        results = []
        for name, argv in SERVERS.items():
            port = free_port()
            results.append(measure(name, argv(port), f"http://127.0.0.1:{port}/", args.duration, connections,
                                   python_thread="mica-python" if name == "mica" else None, load=h2load))
        base = next(r["rps"] for r in results if r["name"] == BASELINE)
        for r in results:
            py = f"{r['python_us']:.1f}" if r["python_us"] is not None else "-"
            print(f"| {connections} × 100 | {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['p99_ms']:.2f} | "
                  f"{r['cpu_us']:.1f} | {py} | {error_text(r)} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
