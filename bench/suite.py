#!/usr/bin/python3
"""The benchmark suite: every server against every scenario it can serve, side by side, in one run.

Each server (1 worker, from apt, started and stopped here) serves the suite's app for its interface
(bench/apps/bench_asgi.py, bench_wsgi.py, bench_rsgi.py; bench/kestrel_hello is the no-Python
ceiling). For each scenario: start the server, warm it up, then one run per concurrency level;
record requests/s, p50/p99 latency, errors, the server's CPU per request, the worker's RSS (idle,
and the peak sampled during the run) and the CPU per request of Mica's Python threads. A run with
any error or non-2xx answer is marked FAILED and not reported. Writes bench/results/<time>.md,
.png and .json, and copies them to results.md / results.png (the latest run).

    bench/suite.py                                  # everything: about an hour
    bench/suite.py --quick                          # a smoke test: 2 s runs, fewer scenarios, c64
    bench/suite.py --servers mica-asgi,uvicorn --scenarios get-10b --concurrency 128 --rounds 3
    bench/suite.py --list                           # the servers and scenarios

Needs: scripts/install-deps (wrk, h2load, the peers, matplotlib).
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BENCH, INLINE_COMPLETIONS, MICA_APPS, PYTHON, ROOT, answers_200, build_kestrel_hello, build_mica, error_text, free_port,  # noqa: E402
                     h2load, kestrel_hello, measure_load, mica, serving, wrk, ws_load)
import report  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Server:
    name: str                           # as given to --servers
    label: str                          # as shown in the results
    interface: str                      # asgi, rsgi, wsgi, or none (Kestrel alone)
    argv: Callable[[int], list]         # port -> command line
    h2_argv: Callable[[int], list] = None   # for the HTTP/2 scenario, if the server cannot offer it next to HTTP/1.1
    http2: bool = False                 # speaks cleartext HTTP/2 (prior knowledge)
    websocket: bool = False
    python_thread: str = None           # Mica: the OS name of the threads running Python ("prefix-" for several)
    compare_to: tuple = ()              # Mica: the peers its requests/s are divided by in the ratio table
    env: dict = None

    def serves(self, scenario):
        return (scenario.needs != "http2" or self.http2) and (scenario.needs != "websocket" or self.websocket)


def mica_server(interface, label, **kwargs):
    """Mica serving its app for `interface` (harness.MICA_APPS), as "mica-<interface>"."""
    app, thread = MICA_APPS[interface]
    return Server(f"mica-{interface}", label, interface, lambda port: mica(port, interface, app), http2=True,
                  python_thread=thread, **kwargs)


def gunicorn(worker_class, app):
    return lambda port: [PYTHON, "-m", "gunicorn", "-w", "1", "-k", worker_class, "-b", f"127.0.0.1:{port}",
                         "--log-level", "warning", app]


SERVERS = [
    mica_server("asgi", "Mica ASGI", websocket=True, compare_to=("uvicorn", "hypercorn", "gunicorn-uvicorn", "daphne", "kestrel")),
    mica_server("rsgi", "Mica RSGI", websocket=True, compare_to=("mica-asgi", "uvicorn")),
    mica_server("wsgi", "Mica WSGI", compare_to=("gunicorn-gthread", "gunicorn-sync", "waitress", "kestrel")),
    Server("uvicorn", "uvicorn (httptools, uvloop)", "asgi",
           lambda port: [PYTHON, "-m", "uvicorn", "--port", str(port), "--http", "httptools", "--loop", "uvloop",
                         "--log-level", "warning", "--no-access-log", "bench_asgi:app"], websocket=True),
    Server("hypercorn", "hypercorn (uvloop)", "asgi",
           lambda port: [PYTHON, "-m", "hypercorn", "-b", f"127.0.0.1:{port}", "-k", "uvloop", "--log-level", "warning",
                         "bench_asgi:reading_app"], http2=True, websocket=True),
    Server("gunicorn-uvicorn", "gunicorn + uvicorn worker", "asgi", gunicorn("uvicorn.workers.UvicornWorker", "bench_asgi:app"),
           websocket=True),
    Server("daphne", "daphne", "asgi", lambda port: [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0",
                                                     "bench_asgi:app"], websocket=True),
    Server("gunicorn-gthread", "gunicorn gthread", "wsgi", gunicorn("gthread", "bench_wsgi:app")),
    Server("gunicorn-sync", "gunicorn sync", "wsgi", gunicorn("sync", "bench_wsgi:app")),
    Server("waitress", "waitress", "wsgi", lambda port: [PYTHON, "-m", "waitress", "--listen", f"127.0.0.1:{port}", "bench_wsgi:app"]),
    Server("kestrel", "Kestrel, no Python (ceiling)", "none", kestrel_hello, h2_argv=partial(kestrel_hello, http2=True),
           http2=True, websocket=True, env=INLINE_COMPLETIONS),
]


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str
    load: Callable = wrk                # (url, duration, concurrency) -> harness.load_result
    levels: tuple = (8, 64, 128)        # concurrency: requests (messages) in flight
    needs: str = None                   # "http2" or "websocket": only the servers that speak it
    scheme: str = "http"


FILE_SIZE = 50 * 1024                   # about the size of Granian's benchmark image

SCENARIOS = [
    Scenario("get-10b", "GET, 10 B body", "/b10"),
    Scenario("get-1k", "GET, 1 KiB body", "/b1k"),
    Scenario("get-10k", "GET, 10 KiB body", "/b10k"),
    Scenario("get-100k", "GET, 100 KiB body", "/b100k"),
    Scenario("post-echo", "POST 1 KiB, echoed back", "/echo", load=partial(wrk, script="post_1k.lua")),
    Scenario("json", "GET, a small JSON document serialised per request", "/json"),
    Scenario("io-10ms", "GET, 10 B after 10 ms of simulated I/O (asyncio.sleep; time.sleep on the server's threads in WSGI)",
             "/io10", levels=(8, 64, 128, 512)),
    Scenario("io-100ms", "GET, 10 B after 100 ms of simulated I/O", "/io100", levels=(8, 64, 128, 512)),
    Scenario("file", f"GET a {FILE_SIZE // 1024} KiB file: http.response.pathsend when the ASGI server offers it "
             "(else read and sent as the body), wsgi.file_wrapper, RSGI response_file", "/file"),
    Scenario("http2", "GET 1 KiB over cleartext HTTP/2 (h2load, at most 100 streams a connection)", "/b1k",
             load=h2load, needs="http2"),
    Scenario("websocket", "WebSocket echo of 64 B binary messages, one in flight per connection (bench/ws_load.py); "
             "rate in messages/s", "/ws", load=ws_load, needs="websocket", scheme="ws"),
]

QUICK_SCENARIOS = ("get-1k", "post-echo", "json", "io-10ms", "file", "http2", "websocket")


def pick(kind, table, names):
    """The entries of `table` named in the comma-separated `names`, in the table's order."""
    wanted = names.split(",")
    unknown = set(wanted) - {t.name for t in table}
    if unknown:
        raise SystemExit(f"unknown {kind}: {', '.join(sorted(unknown))} (bench/suite.py --list shows them)")
    return [t for t in table if t.name in wanted]


DRAIN_TIMEOUT = 120    # seconds a server may take to answer one GET after a run (its queue of earlier requests)


def run_server(server, scenario, levels, duration, warmup):
    """Serves `scenario` with `server`: warm-up at the highest level, then one run per level, each
    once the server has worked through what the previous load left queued (a GET answered). Yields
    a record per level as it is measured; a failed one has "failure" set (the server did not start
    or did not drain, the load generator failed, or the run saw errors or non-2xx answers)."""
    port = free_port()
    url = f"{scenario.scheme}://127.0.0.1:{port}{scenario.path}"
    ready = f"http://127.0.0.1:{port}/b10"
    base = {"scenario": scenario.name, "server": server.name}
    h2_only = scenario.needs == "http2" and server.h2_argv is not None
    argv = (server.h2_argv if h2_only else server.argv)(port)
    pending = list(levels)
    try:
        with serving(argv, ready, server.env, http2=h2_only) as served:
            try:
                scenario.load(url, warmup, max(levels))
            except Exception:       # noqa: BLE001 - the measured runs say what is wrong
                pass
            while pending:
                level = pending.pop(0)
                try:
                    if not answers_200(ready, http2=h2_only, timeout=DRAIN_TIMEOUT):
                        raise RuntimeError(f"still busy with earlier requests after {DRAIN_TIMEOUT} s")
                    r = measure_load(served, scenario.load, url, duration, level, server.python_thread)
                    failure = error_text(r) if r["errors"] or r["non2xx"] else None if r["total"] else "no request completed"
                    yield {**base, "concurrency": level, **r, "failure": failure}
                except Exception as e:  # noqa: BLE001 - recorded as this run's failure
                    yield {**base, "concurrency": level, "failure": describe(e)}
    except Exception as e:          # noqa: BLE001 - the server did not start
        for level in pending:
            yield {**base, "concurrency": level, "failure": f"start: {describe(e)}"}


def describe(error):
    if isinstance(error, subprocess.CalledProcessError):
        output = (error.stderr or error.stdout or "").strip().splitlines()
        tool = os.path.basename(error.cmd[4] if error.cmd[3] == PYTHON else error.cmd[3])     # after "taskset -c N"
        return f"{tool} exited {error.returncode}" + (f": {output[-1]}" if output else "")
    return str(error).replace("\n", " ")


def combine(records):
    """One record per (scenario, server, concurrency) from its rounds: the medians, the highest peak
    RSS; failed if any round failed."""
    groups = {}
    for r in records:
        groups.setdefault((r["scenario"], r["server"], r["concurrency"]), []).append(r)
    combined = []
    for rounds in groups.values():
        failures = [r["failure"] for r in rounds if r["failure"]]
        if failures:
            combined.append({**rounds[0], "failure": "; ".join(dict.fromkeys(failures))})
            continue
        merged = dict(rounds[0])
        for key in ("rps", "p50_ms", "p99_ms", "cpu_us", "idle_rss", "first_200"):
            merged[key] = statistics.median(r[key] for r in rounds)
        if rounds[0]["python_us"] is not None:
            merged["python_us"] = statistics.median(r["python_us"] for r in rounds)
        merged["peak_rss"] = max(r["peak_rss"] for r in rounds)
        combined.append(merged)
    return combined


def write_file(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", help="comma-separated, default all (--list)")
    parser.add_argument("--scenarios", help="comma-separated, default all (--quick: a subset)")
    parser.add_argument("--concurrency", help="comma-separated levels for every scenario (default: each scenario's own; --quick: 64)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10; --quick: 2)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per server and scenario (default 3; --quick: 1)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each scenario's servers, alternating their order; report medians")
    parser.add_argument("--quick", action="store_true", help="smoke test: short runs, a subset of scenarios, one level")
    parser.add_argument("--output", default=os.path.join(BENCH, "results"), help="directory for the results (default bench/results)")
    parser.add_argument("--list", action="store_true", help="list the servers and scenarios and exit")
    args = parser.parse_args()

    if args.list:
        for s in SERVERS:
            print(f"server    {s.name:18} {s.label}")
        for s in SCENARIOS:
            print(f"scenario  {s.name:18} {s.title}; concurrency {'/'.join(map(str, s.levels))}")
        return 0
    servers = pick("servers", SERVERS, args.servers) if args.servers else SERVERS
    scenarios = pick("scenarios", SCENARIOS, args.scenarios or ",".join(QUICK_SCENARIOS)) \
        if args.scenarios or args.quick else SCENARIOS
    levels = tuple(int(c) for c in args.concurrency.split(",")) if args.concurrency else (64,) if args.quick else None
    duration = args.duration or (2 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)

    plan = [(sc, sv) for sc in scenarios for sv in servers if sv.serves(sc)]
    runs = sum(len(levels or sc.levels) for sc, _ in plan) * args.rounds
    print(f"{runs} runs of {duration:g} s ({len(plan) * args.rounds} server starts)", file=sys.stderr)
    build_mica()
    build_kestrel_hello()

    started, load_before = time.monotonic(), os.getloadavg()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BENCH_FILE"] = os.path.join(tmp, "file.bin")
        write_file(os.environ["BENCH_FILE"], FILE_SIZE)
        for scenario in scenarios:
            serving_it = [s for s in servers if s.serves(scenario)]
            for round_ in range(args.rounds):
                for server in serving_it if round_ % 2 == 0 else reversed(serving_it):
                    for r in run_server(server, scenario, levels or scenario.levels, duration, warmup):
                        records.append(r)
                        outcome = f"FAILED: {r['failure']}" if r["failure"] else f"{r['rps']:.0f}/s, p99 {r['p99_ms']:.2f} ms"
                        print(f"[{len(records)}/{runs} {time.monotonic() - started:.0f} s] {scenario.name} "
                              f"c{r['concurrency']} {server.name}: {outcome}", file=sys.stderr, flush=True)
    wall = time.monotonic() - started

    meta = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip(),
        "cores": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
        "duration": duration, "warmup": warmup, "rounds": args.rounds, "wall_s": wall,
        "command": "bench/suite.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    }
    results = combine(records)
    os.makedirs(args.output, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = report.markdown(results, meta, servers, scenarios, chart=f"{stamp}.png")
    with open(os.path.join(args.output, f"{stamp}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.output, f"{stamp}.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    report.chart(results, servers, scenarios, os.path.join(args.output, f"{stamp}.png"))
    shutil.copyfile(os.path.join(args.output, f"{stamp}.png"), os.path.join(args.output, "results.png"))
    with open(os.path.join(args.output, "results.md"), "w") as f:
        f.write(text.replace(f"({stamp}.png)", "(results.png)"))
    print(text)
    failed = sum(1 for r in results if r["failure"])
    print(f"{failed} of {len(results)} results FAILED; written: {os.path.join(args.output, stamp)}.md/.png/.json, "
          f"results.md, results.png; wall time {wall / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
