"""What the benchmarks share: starting a server, driving it with a load generator (wrk, h2load,
bench/ws_load.py), reading CPU and memory from /proc."""

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
APPS = os.path.join(BENCH, "apps")
PYTHON = "/usr/bin/python3"
TICK = os.sysconf("SC_CLK_TCK")
LAST_CORE = str(os.cpu_count() - 1)     # where the load generator runs: taskset keeps it off the server's core


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Mica's app in bench/apps for each interface, and the OS name of the worker threads that run it
# (ending in "-": the prefix of several).
MICA_APPS = {"asgi": ("bench_asgi:app", "mica-python"), "rsgi": ("bench_rsgi:app", "mica-python"),
             "wsgi": ("bench_wsgi:app", "mica-wsgi-")}


def mica(port, interface, app, *extra):
    """argv of Mica serving `app` (from bench/apps) on `port`, 1 worker, warnings only."""
    return [os.path.join(ROOT, "mica"), "--python", PYTHON, "--interface", interface, "--port", str(port),
            "--log-level", "warning", *extra, app]


def build_mica():
    """The ./mica launcher rebuilds when sources changed: do it before anything is timed."""
    subprocess.run([os.path.join(ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)


def answers_200(url, http2=False, timeout=1.0):
    """One GET: over HTTP/1.1, or with `http2` over cleartext HTTP/2 with prior knowledge (curl)."""
    if http2:
        return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", f"{timeout:g}",
                               "--http2-prior-knowledge", url], capture_output=True, text=True).stdout == "200"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for_200(url, timeout=60.0, proc=None, http2=False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before answering")
        if answers_200(url, http2):
            return
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


def thread_cpu(pid, name):
    """{tid: CPU ticks} of the threads named `name`, or starting with it when it ends with "-" (e.g. "mica-wsgi-")."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            if comm == name or (name.endswith("-") and comm.startswith(name)):
                found[int(tid)] = cpu_ticks(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:           # the thread ended meanwhile
            pass
    return found


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The most RSS a process had, sampled every `interval` seconds on a thread while in the `with`."""

    def __init__(self, pid, interval=0.25):
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_mib(self.pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


# Every load generator returns the same record: requests (or messages) per second and in all, what
# went wrong (socket errors as text; non-2xx answers counted) and the p50 / p99 latency in ms.
def load_result(rps, total, errors, non2xx, p50_ms, p99_ms):
    return {"rps": rps, "total": total, "errors": errors, "non2xx": non2xx, "p50_ms": p50_ms, "p99_ms": p99_ms}


def wrk(url, duration, connections, script=None):
    """One wrk run on one thread pinned to the last core; `script`: a Lua file of bench/ (e.g. a POST)."""
    extra = ["-s", os.path.join(BENCH, script)] if script else []
    out = subprocess.run(["taskset", "-c", LAST_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency",
                          *extra, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    percentile = {p: re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out) for p in (50, 99)}
    return load_result(
        float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), int(re.search(r"(\d+) requests in", out).group(1)),
        errors.group(1) if errors else "", int(non2xx.group(1)) if non2xx else 0,
        *(to_ms(*m.groups()) if m else math.nan for m in percentile.values()))


def h2load(url, duration, concurrency, max_streams=100):
    """One h2load run (cleartext HTTP/2, prior knowledge) pinned to the last core, `concurrency`
    requests in flight: ceil(concurrency / max_streams) connections sharing them (100 is Kestrel's
    and hypercorn's default limit of concurrent streams). Latencies from h2load's per-request log."""
    connections = math.ceil(concurrency / max_streams)
    streams = math.ceil(concurrency / connections)
    with tempfile.NamedTemporaryFile("r") as log:
        out = subprocess.run(["taskset", "-c", LAST_CORE, "h2load", "-D", f"{duration:g}", "-c", str(connections),
                              "-m", str(streams), "--log-file", log.name, url], capture_output=True, text=True, check=True).stdout
        times = sorted(int(line.split("\t")[2]) for line in log if line.count("\t") >= 2)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    succeeded, failed, errored = (int(n) for n in done.groups())
    codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    return load_result(
        float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out).group(1)), succeeded,
        f"failed {failed}, errored {errored}" if failed or errored else "", sum(int(n) for n in codes.groups()) if codes else 0,
        times[len(times) // 2] / 1000 if times else math.nan, times[int(len(times) * 0.99)] / 1000 if times else math.nan)


def ws_load(url, duration, connections):
    """One bench/ws_load.py run pinned to the last core: WebSocket echo messages per second."""
    out = subprocess.run(["taskset", "-c", LAST_CORE, PYTHON, os.path.join(BENCH, "ws_load.py"), url,
                          "--connections", str(connections), "--duration", str(duration)],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    errors = ", ".join(f"{kind} {n}" for kind, n in r["errors"].items())
    return load_result(r["rps"], r["messages"], errors, 0,
                       r["p50_ms"] if r["p50_ms"] is not None else math.nan, r["p99_ms"] if r["p99_ms"] is not None else math.nan)


def kestrel_hello(port, http2=False):
    """argv of bench/kestrel_hello (build it first with build_kestrel_hello): Kestrel alone, the ceiling;
    HTTP/1.1, or with `http2` cleartext HTTP/2 (prior knowledge) only."""
    return [os.path.join(ROOT, "artifacts", "bin", "KestrelHello", "release", "KestrelHello"), str(port), *(["h2"] if http2 else [])]


def build_kestrel_hello():
    subprocess.run(["dotnet", "build", os.path.join(BENCH, "kestrel_hello"), "-c", "Release", "-v", "quiet", "-nologo"],
                   check=True, stdout=subprocess.DEVNULL)


# Mica's workers run socket completions inline (WorkerProcess.cs); the ceiling gets the same.
INLINE_COMPLETIONS = {"DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS": "1"}


class Served:
    """A running server: its process tree (the worker is the deepest), idle RSS (worker's and master's), start-up time."""

    def __init__(self, proc, first_200):
        self.proc, self.first_200 = proc, first_200
        self.pids = tree(proc.pid)
        self.worker = self.pids[-1]
        self.idle_rss, self.master_rss = rss_mib(self.worker), rss_mib(self.pids[0])


@contextlib.contextmanager
def serving(argv, url, env=None, settle=1.0, http2=False):
    """Starts the server (cwd bench/apps, `env`: variables added to ours), waits for `url` to answer 200
    (over HTTP/2 with `http2`) and `settle` seconds more, yields a Served, stops it (SIGINT, then
    SIGKILL after 15 s; SIGKILL to what is left of its process tree)."""
    started = time.monotonic()
    # Output to a file, not a pipe: a server that logs under load (waitress) would block on a full pipe.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, cwd=APPS, stdout=log, stderr=log, env={**os.environ, **(env or {})})
        try:
            try:
                wait_for_200(url, proc=proc, http2=http2)
            except RuntimeError as e:
                log.seek(0)
                tail = log.read().decode(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError("; ".join([str(e), *tail])) from None
            first_200 = time.monotonic() - started
            time.sleep(settle)
            yield Served(proc, first_200)
        finally:
            family = tree(proc.pid)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pid in family[1:]:          # a worker its master left behind (gunicorn's, stuck in a request)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def measure_load(served, load, url, duration, concurrency, python_thread=None):
    """One measured `load` run against a served server: the load's record plus the server's CPU per
    request (all its processes), the CPU per request of the worker's `python_thread` threads
    (OS thread name, or "prefix-"), and the worker's peak RSS during the run."""
    threads0 = thread_cpu(served.worker, python_thread) if python_thread else {}
    cpu0 = process_cpu(served.pids)
    with RssSampler(served.worker) as rss:
        result = load(url, duration, concurrency)
    cpu = (process_cpu(served.pids) - cpu0) / TICK
    threads1 = thread_cpu(served.worker, python_thread) if python_thread else {}
    # Threads started during the run count whole; those that ended during it are lost (rare: idle ones).
    thread = (sum(threads1.values()) - sum(threads0.get(t, 0) for t in threads1)) / TICK
    total = result["total"] or math.nan
    return {**result, "cpu_us": cpu / total * 1e6, "python_us": thread / total * 1e6 if python_thread else None,
            "idle_rss": served.idle_rss, "master_rss": served.master_rss, "peak_rss": rss.peak, "first_200": served.first_200}


def measure(name, argv, url, duration, connections, python_thread=None, load=wrk, env=None, warmup=3):
    """Starts the server, warms it up (`warmup` s of the same load), measures one `load` run, stops it."""
    with serving(argv, url, env) as served:
        load(url, warmup, connections)                   # JIT tiers, caches, thread pools
        return {"name": name, **measure_load(served, load, url, duration, connections, python_thread)}


def error_text(result):
    """What went wrong in a run ("0" if nothing): socket errors and non-2xx answers."""
    parts = [result["errors"], f"non-2xx {result['non2xx']}" if result["non2xx"] else ""]
    return ", ".join(p for p in parts if p) or "0"
