#!/usr/bin/python3
"""Side by side: WSGI "hello" (13 B) and a 10 KiB body under Mica, gunicorn (gthread and sync) and waitress.

For each server and body, in one run: requests/s, ratio to gunicorn gthread, p99 latency, the
server's CPU per request, and for Mica the CPU per request of its `mica-wsgi-N` threads (the
Python side, from /proc/PID/task/TID/stat). The 13 B run also measures the ceiling: Kestrel alone
(bench/kestrel_hello, no Python) answering the same bytes. wrk -t1 -c64, pinned to the last core, 1 worker each;
gunicorn gthread with its default thread count, as in Granian's own benchmark.

    bench/wsgi_hello.py [--duration 10] [--connections 64]

Needs: wrk, gunicorn, python3-waitress (apt).
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import INLINE_COMPLETIONS, PYTHON, ROOT, error_text, free_port, kestrel_hello, measure  # noqa: E402

SERVERS = {
    "mica": lambda port: [os.path.join(ROOT, "mica"), "--python", PYTHON, "--interface", "wsgi", "--port", str(port),
                          "--log-level", "warning", "hello_wsgi:app"],
    "gunicorn gthread": lambda port: [PYTHON, "-m", "gunicorn", "-w", "1", "-k", "gthread", "-b", f"127.0.0.1:{port}",
                                      "--log-level", "warning", "hello_wsgi:app"],
    "gunicorn sync": lambda port: [PYTHON, "-m", "gunicorn", "-w", "1", "-k", "sync", "-b", f"127.0.0.1:{port}",
                                   "--log-level", "warning", "hello_wsgi:app"],
    "waitress": lambda port: [PYTHON, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "hello_wsgi:app"],
}
BASELINE = "gunicorn gthread"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    subprocess.run([os.path.join(ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)  # build first
    print(f"\nWSGI, wrk -t1 -c{args.connections} -d{args.duration}s, {os.cpu_count()} cores, 1 worker each\n")
    print("| body | server | requests/s | ratio to gunicorn gthread | p99 ms | server CPU µs/req | mica-wsgi threads µs/req | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for label, path in (("13 B", "/"), ("10 KiB", "/10k")):
        results = []
        for name, argv in SERVERS.items():
            port = free_port()
            results.append(measure(name, argv(port), f"http://127.0.0.1:{port}{path}", args.duration, args.connections,
                                   python_thread="mica-wsgi-" if name == "mica" else None))
        if path == "/":
            port = free_port()
            results.append(measure("raw Kestrel, no Python (ceiling)", kestrel_hello(port), f"http://127.0.0.1:{port}/",
                                   args.duration, args.connections, env=INLINE_COMPLETIONS))
        base = next(r["rps"] for r in results if r["name"] == BASELINE)
        for r in results:
            py = f"{r['python_us']:.1f}" if r["python_us"] is not None else "-"
            print(f"| {label} | {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['p99_ms']:.1f} | "
                  f"{r['cpu_us']:.1f} | {py} | {error_text(r)} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
