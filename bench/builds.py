#!/usr/bin/python3
"""Side by side: the same Mica sources built three ways, serving the ASGI app of the suite (bench_asgi.py, GET /b10).

- `build`: what ./mica runs (`dotnet build`: framework-dependent, JIT with tiered PGO);
- `single-file`: `dotnet publish` self-contained, one trimmed ReadyToRun file, JIT (scripts/publish jit);
- `aot`: `dotnet publish` NativeAOT, one native file, no JIT (scripts/publish aot).

For each, alternated `--rounds` times: the time from the command to the first 200, the master's and
the worker's idle RSS, and requests/s under wrk -t1 -c128 (2 s warm-up), with the ratios to `build`.

    bench/builds.py [--duration 10] [--rounds 3]

Needs: wrk, clang and zlib1g-dev (for the NativeAOT build) (apt).
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PYTHON, ROOT, error_text, free_port, measure  # noqa: E402

BUILDS = os.path.join(ROOT, "artifacts", "bench-builds")


def binaries():
    """Builds the three variants; returns (name, path) pairs."""
    subprocess.run([os.path.join(ROOT, "mica"), "--version"], check=True, stdout=subprocess.DEVNULL)
    found = [("build", os.path.join(ROOT, "artifacts", "bin", "Mica", "release", "mica"))]
    for mode, name in (("jit", "single-file"), ("aot", "aot")):
        out = os.path.join(BUILDS, mode)
        subprocess.run([os.path.join(ROOT, "scripts", "publish"), mode, out], check=True, stdout=subprocess.DEVNULL)
        found.append((name, os.path.join(out, "mica")))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    variants = binaries()
    results = {name: [] for name, _ in variants}
    for _ in range(args.rounds):
        for name, binary in variants:
            port = free_port()
            argv = [binary, "--python", PYTHON, "--interface", "asgi", "--port", str(port),
                    "--log-level", "warning", "bench_asgi:app"]
            url = f"http://127.0.0.1:{port}/b10"
            results[name].append(measure(name, argv, url, args.duration, args.connections))

    def median(name, key):
        return statistics.median(r[key] for r in results[name])

    print(f"\nASGI GET /b10, wrk -t1 -c{args.connections} -d{args.duration}s, {os.cpu_count()} cores, "
          f"{args.rounds} rounds (medians; ratios to `build`)\n")
    print("| build | size MiB | first 200 s | master RSS MiB | worker RSS MiB | requests/s | ratio | server CPU µs/req | errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = median("build", "rps")
    for name, binary in variants:
        size = os.path.getsize(binary) / 2**20
        errors = ", ".join(sorted({error_text(r) for r in results[name]}))
        print(f"| {name} | {size:.1f} | {median(name, 'first_200'):.2f} | {median(name, 'master_rss'):.1f} | "
              f"{median(name, 'idle_rss'):.1f} | {median(name, 'rps'):.0f} | {median(name, 'rps') / base:.2f} | "
              f"{median(name, 'cpu_us'):.1f} | {errors} |")
    print("\n`build` is framework-dependent: its size is the apphost alone (the shared .NET runtime is not counted).")


if __name__ == "__main__":
    sys.exit(main())
