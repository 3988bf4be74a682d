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
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "bench", "apps")
PYTHON = "/usr/bin/python3"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_200(url, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def tree(pid):
    pids = [pid]
    for child in children(pid):
        pids += tree(child)
    return pids


def cpu_ticks(path):
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def process_cpu(pids):
    return sum(cpu_ticks(f"/proc/{p}/stat") for p in pids)


def thread_ids(pid, name):
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == name:
                found.append(int(tid))
    return found


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(url, duration, connections):
    last_core = str(os.cpu_count() - 1)
    out = subprocess.run(["taskset", "-c", last_core, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, total, (errors.group(1) if errors else ""), int(non2xx.group(1)) if non2xx else 0


def measure(name, argv, url, duration, connections, python_thread=None):
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=APPS, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_200(url)
        first_200 = time.monotonic() - started
        time.sleep(1.0)
        pids = tree(proc.pid)
        worker = pids[-1]
        idle_rss = rss_mib(worker)
        wrk(url, 2, connections)                         # warm-up (JIT tiers, caches)
        tids = thread_ids(worker, python_thread) if python_thread else []
        cpu0 = process_cpu(pids)
        thread0 = sum(cpu_ticks(f"/proc/{worker}/task/{t}/stat") for t in tids)
        rps, total, errors, non2xx = wrk(url, duration, connections)
        cpu = (process_cpu(pids) - cpu0) / TICK
        thread = (sum(cpu_ticks(f"/proc/{worker}/task/{t}/stat") for t in tids) - thread0) / TICK
        return {
            "name": name, "rps": rps, "total": total, "errors": errors, "non2xx": non2xx,
            "cpu_us": cpu / total * 1e6, "python_us": (thread / total * 1e6) if tids else None,
            "idle_rss": idle_rss, "first_200": first_200,
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


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
        errors = ", ".join(x for x in (r["errors"], f"non-2xx {r['non2xx']}" if r["non2xx"] else "") if x) or "0"
        print(f"| {r['name']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['cpu_us']:.1f} | {py} | "
              f"{r['idle_rss']:.1f} | {r['first_200']:.2f} | {errors} |")
    print(f"\nmedian ratio mica/uvicorn: {statistics.median(ratios):.2f}; "
          f"median mica-python µs/req: {statistics.median(python_us):.1f}")


if __name__ == "__main__":
    sys.exit(main())
