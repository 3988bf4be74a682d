"""What the side-by-side benchmarks share: starting a server, driving it with wrk, reading CPU from /proc."""

import os
import re
import signal
import socket
import subprocess
import tempfile
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
    """Threads named `name`, or starting with it when it ends with "-" (e.g. "mica-wsgi-")."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            comm = f.read().strip()
        if comm == name or (name.endswith("-") and comm.startswith(name)):
            found.append(int(tid))
    return found


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(url, duration, connections):
    """One wrk run pinned to the last core: (requests/s, requests, socket errors, non-2xx, p99 ms)."""
    last_core = str(os.cpu_count() - 1)
    out = subprocess.run(["taskset", "-c", last_core, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)] if p99 else float("nan")
    return rps, total, (errors.group(1) if errors else ""), int(non2xx.group(1)) if non2xx else 0, p99_ms


def h2load(url, duration, connections, streams=100):
    """One h2load run (HTTP/2 prior knowledge, `streams` concurrent streams per connection), pinned
    to the last core, in wrk()'s shape; h2load gives no percentiles, so p99 is the mean time."""
    last_core = str(os.cpu_count() - 1)
    out = subprocess.run(["taskset", "-c", last_core, "h2load", "-D", str(duration), "-c", str(connections),
                          "-m", str(streams), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1))
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    total, failed, errored = int(done.group(2)), int(done.group(3)), int(done.group(4))
    codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    non2xx = sum(int(n) for n in codes.groups()) if codes else 0
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    mean_ms = float(mean.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[mean.group(2)] if mean else float("nan")
    errors = f"failed {failed}, errored {errored}" if failed or errored else ""
    return rps, total, errors, non2xx, mean_ms


def kestrel_hello(port):
    """argv (built first) of bench/kestrel_hello: Kestrel alone answering "Hello, world!" — the ceiling."""
    project = os.path.join(ROOT, "bench", "kestrel_hello")
    subprocess.run(["dotnet", "build", project, "-c", "Release", "-v", "quiet", "-nologo"], check=True, stdout=subprocess.DEVNULL)
    return [os.path.join(ROOT, "artifacts", "bin", "KestrelHello", "release", "KestrelHello"), str(port)]


# Mica's workers run socket completions inline (WorkerProcess.cs); the ceiling gets the same.
INLINE_COMPLETIONS = {**os.environ, "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS": "1"}


def measure(name, argv, url, duration, connections, python_thread=None, load=wrk, env=None):
    """Starts the server, warms it up, measures one `load` run (wrk, or h2load), stops it.
    `python_thread`: the OS name (or "prefix-") of the threads whose CPU per request is reported."""
    started = time.monotonic()
    # Output to a file, not a pipe: a server that logs under load (waitress) would block on a full pipe.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, cwd=APPS, stdout=log, stderr=log, env=env)
    try:
        wait_for_200(url)
        first_200 = time.monotonic() - started
        time.sleep(1.0)
        pids = tree(proc.pid)
        worker = pids[-1]
        idle_rss, master_rss = rss_mib(worker), rss_mib(pids[0])
        load(url, 3, connections)                        # warm-up (JIT tiers, caches, thread pools)
        tids = thread_ids(worker, python_thread) if python_thread else []
        cpu0 = process_cpu(pids)
        thread0 = sum(cpu_ticks(f"/proc/{worker}/task/{t}/stat") for t in tids)
        rps, total, errors, non2xx, p99 = load(url, duration, connections)
        cpu = (process_cpu(pids) - cpu0) / TICK
        thread = (sum(cpu_ticks(f"/proc/{worker}/task/{t}/stat") for t in tids
                      if os.path.exists(f"/proc/{worker}/task/{t}/stat")) - thread0) / TICK
        return {
            "name": name, "rps": rps, "total": total, "errors": errors, "non2xx": non2xx, "p99_ms": p99,
            "cpu_us": cpu / total * 1e6, "python_us": (thread / total * 1e6) if tids else None,
            "idle_rss": idle_rss, "master_rss": master_rss, "first_200": first_200,
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def error_text(result):
    """What went wrong in a run ("0" if nothing): socket errors and non-2xx answers."""
    parts = [result["errors"], f"non-2xx {result['non2xx']}" if result["non2xx"] else ""]
    return ", ".join(p for p in parts if p) or "0"
