"""The benchmark suite's output (bench/suite.py): the markdown report and the chart."""

import math


def by_key(results):
    return {(r["scenario"], r["server"], r["concurrency"]): r for r in results}


def levels_of(results, scenario):
    return sorted({r["concurrency"] for r in results if r["scenario"] == scenario.name})


def number(value, digits):
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def ratio_cell(mine, theirs):
    if mine is None or theirs is None:
        return ""
    if mine["failure"] or theirs["failure"]:
        return "failed"
    return f"{mine['rps'] / theirs['rps']:.2f}"


def markdown(results, meta, servers, scenarios, chart):
    found = by_key(results)
    lines = [
        "# Benchmark results",
        "",
        f"{meta['date']}, commit `{meta['commit']}`, {meta['cores']} cores; load average (1 min) "
        f"{meta['load_before'][0]:.2f} before the run, {meta['load_after'][0]:.2f} after. "
        f"1 worker per server; {meta['duration']:g} s per run after {meta['warmup']:g} s of warm-up per server and "
        f"scenario, {meta['rounds']} round(s); the load generator (wrk -t1, h2load, bench/ws_load.py) pinned to the "
        f"last core. Wall time {meta['wall_s'] / 60:.1f} min. `{meta['command']}`",
        "",
        "What each column means: bench/README.md. A run with any socket error, timeout or non-2xx answer is "
        "FAILED: its numbers are not reported.",
        "",
        f"![requests per second]({chart})",
    ]
    pairs = [(m, p) for m in servers for p in servers if p.name in m.compare_to]
    rows = []
    for scenario in scenarios:
        for level in levels_of(results, scenario):
            cells = [ratio_cell(found.get((scenario.name, m.name, level)), found.get((scenario.name, p.name, level)))
                     for m, p in pairs]
            if any(cells):
                rows.append(f"| {scenario.name} | {level} | " + " | ".join(cells) + " |")
    if rows:
        lines += [
            "", "## Mica's ratios to each peer", "",
            "Mica's requests/s divided by the peer's, same scenario and concurrency (> 1: Mica serves more).", "",
            "| scenario | c | " + " | ".join(f"{m.label} ÷ {p.name}" for m, p in pairs) + " |",
            "|---|---|" + "---|" * len(pairs),
            *rows,
        ]
    for scenario in scenarios:
        lines += [
            "", f"## {scenario.name}: {scenario.title}", "",
            "| c | server | requests/s | p50 ms | p99 ms | errors | server CPU µs/req | Mica Python threads µs/req "
            "| worker RSS MiB, idle → peak |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for level in levels_of(results, scenario):
            for server in servers:
                r = found.get((scenario.name, server.name, level))
                if r is None:
                    continue
                if r["failure"]:
                    lines.append(f"| {level} | {server.label} | **FAILED** | | | {r['failure']} | | | |")
                else:
                    lines.append(
                        f"| {level} | {server.label} | {number(r['rps'], 0)} | {number(r['p50_ms'], 2)} | "
                        f"{number(r['p99_ms'], 2)} | 0 | {number(r['cpu_us'], 1)} | {number(r['python_us'], 1)} | "
                        f"{number(r['idle_rss'], 0)} → {number(r['peak_rss'], 0)} |")
    return "\n".join(lines) + "\n"


def chart(results, servers, scenarios, path):
    """One panel per scenario: requests/s per server, grouped by concurrency; × where a run failed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = by_key(results)
    shown = [s for s in scenarios if levels_of(results, s)]
    present = [s for s in servers if any(r["server"] == s.name for r in results)]
    colours = {s.name: plt.get_cmap("tab20")(i % 20) for i, s in enumerate(present)}
    columns = min(3, len(shown)) or 1
    rows = math.ceil(len(shown) / columns) or 1
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 3.6 * rows), squeeze=False)
    for ax, scenario in zip(axes.flat, shown):
        levels = levels_of(results, scenario)
        serving = [s for s in present if any((scenario.name, s.name, c) in found for c in levels)]
        width = 0.8 / len(serving)
        for i, server in enumerate(serving):
            for j, level in enumerate(levels):
                r = found.get((scenario.name, server.name, level))
                x = j - 0.4 + width * (i + 0.5)
                if r is None:
                    continue
                if r["failure"]:
                    ax.plot(x, 0, marker="x", color=colours[server.name])
                else:
                    ax.bar(x, r["rps"], width, color=colours[server.name])
        ax.set_title(scenario.name, fontsize=10)
        ax.set_xticks(range(len(levels)), [f"c{c}" for c in levels])
        ax.set_ylabel("messages/s" if scenario.needs == "websocket" else "requests/s", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    figure.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[s.name]) for s in present],
                  labels=[s.label for s in present], loc="lower center", ncol=min(4, len(present)), fontsize=9)
    figure.tight_layout(rect=(0, 0.04 + 0.02 * math.ceil(len(present) / 4), 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)
