#!/usr/bin/python3
"""The scaling model's check (bench/README.md, "What many cores would give"): Mica's one app thread
(`mica-python`, ASGI or RSGI) pinned alone on the first core, every other thread of the worker and
the load generator on the last, so the app thread's share of a request is measured without
Kestrel's threads beside it. Reports requests/s, the app thread's CPU per request and how busy it
was, and the ceiling that implies for one worker: 1 s / (app thread CPU per request).

    bench/scaling.py [--interface asgi|rsgi] [--duration 10] [--connections 128] [--task-impl asyncio|rust]

Needs: wrk (apt), taskset (util-linux), 2 cores or more.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (LAST_CORE, MICA_APPS, TICK, build_mica, error_text, free_port, mica, process_cpu,  # noqa: E402
                     serving, thread_cpu, wrk)


def pin(tid, core):
    subprocess.run(["taskset", "-p", "-c", str(core), str(tid)], check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interface", choices=["asgi", "rsgi"], default="asgi")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--task-impl", choices=["asyncio", "rust"], default="asyncio")
    args = parser.parse_args()
    if os.cpu_count() < 2:
        sys.exit("needs 2 cores or more")

    build_mica()
    port = free_port()
    url = f"http://127.0.0.1:{port}/b10"
    app, app_thread = MICA_APPS[args.interface]
    argv = mica(port, args.interface, app, "--task-impl", args.task_impl)
    with serving(argv, url) as served:
        wrk(url, 3, args.connections)                       # warm-up: JIT tiers, thread pools
        app_threads = thread_cpu(served.worker, app_thread)
        # Every thread now alive: the app thread alone on core 0, the rest beside the load generator.
        for tid in map(int, os.listdir(f"/proc/{served.worker}/task")):
            pin(tid, 0 if tid in app_threads else LAST_CORE)
        cpu0, app0, started = process_cpu(served.pids), sum(thread_cpu(served.worker, app_thread).values()), time.monotonic()
        result = wrk(url, args.duration, args.connections)
        wall = time.monotonic() - started
        cpu = (process_cpu(served.pids) - cpu0) / TICK
        app_cpu = (sum(thread_cpu(served.worker, app_thread).values()) - app0) / TICK

    app_us = app_cpu / result["total"] * 1e6
    print(f"\n{args.interface.upper()} GET /b10, --task-impl {args.task_impl}, wrk -t1 -c{args.connections} "
          f"-d{args.duration}s; {app_thread} alone on core 0, the worker's other threads and wrk on core {LAST_CORE}\n")
    print("| requests/s | errors | server CPU µs/req | app thread µs/req | app thread busy | one worker's ceiling, req/s |")
    print("|---|---|---|---|---|---|")
    print(f"| {result['rps']:.0f} | {error_text(result)} | {cpu / result['total'] * 1e6:.1f} | {app_us:.1f} "
          f"| {app_cpu / wall:.0%} | {1e6 / app_us:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
