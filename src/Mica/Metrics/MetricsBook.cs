using System.Diagnostics;
using Mica.Server.Metrics;

namespace Mica.Metrics;

/// <summary>Why a worker was replaced by a new one (<c>mica_worker_restarts_total</c>'s reason).</summary>
internal enum RestartReason { Error, Lifetime, Rss, Signal, Reload }

/// <summary>
/// The master's account of the metrics (<c>--metrics</c>), kept by the supervisor loop only: its own
/// counters (spawns, restarts by reason, reloads) and, per worker id, what its workers reported.
///
/// Counters never go backwards, whatever happens to the workers. A worker's counters start from zero
/// in each new process, so per id the book keeps the totals of the processes that are gone (their
/// last report, folded in when they exit) and adds the live processes' latest reports to them. A
/// worker that stops gracefully reports once more after draining, so nothing is lost; one that is
/// killed loses what it counted since its last report (one interval at most). During a rolling
/// replacement the old and the new process of an id are both live, and the id shows their sum.
/// </summary>
internal sealed class MetricsBook
{
    private long _spawns, _reloads;
    private readonly long[] _restarts = new long[Enum.GetValues<RestartReason>().Length];
    private readonly SortedDictionary<int, MetricsReport> _gone = [];
    private readonly Dictionary<object, Live> _live = [];   // by process (the supervisor's WorkerProcess)

    private sealed class Live(int id, long spawnedAt)
    {
        public int Id { get; } = id;
        public long SpawnedAt { get; } = spawnedAt;
        public MetricsReport? Report { get; set; }
        public long? RssBytes { get; set; }
    }

    public void Spawned(object process, int id)
    {
        _spawns++;
        _live[process] = new Live(id, Stopwatch.GetTimestamp());
    }

    /// <summary>A worker was spawned to replace one (counted once the replacement is spawned, as Granian does).</summary>
    public void Restarted(RestartReason reason, int count = 1) => _restarts[(int)reason] += count;

    public void Reloaded() => _reloads++;

    public void Reported(object process, MetricsReport report, long? rssBytes)
    {
        if (!_live.TryGetValue(process, out var live)) return;
        live.Report = report;
        live.RssBytes = rssBytes;
    }

    /// <summary>The process is gone: its counters join its id's totals.</summary>
    public void Exited(object process)
    {
        if (!_live.Remove(process, out var live) || live.Report is not { } last) return;
        var counters = last.CountersOnly();
        _gone[live.Id] = _gone.TryGetValue(live.Id, out var before) ? MetricsReport.Sum(before, counters) : counters;
    }

    /// <summary>An immutable picture for the exporter, which renders it on its own threads.</summary>
    public MetricsView View()
    {
        var ids = new SortedSet<int>(_gone.Keys);
        foreach (var live in _live.Values) if (live.Report is not null) ids.Add(live.Id);
        var workers = new List<WorkerView>(ids.Count);
        foreach (var id in ids)
        {
            var reporting = _live.Values.Where(l => l.Id == id && l.Report is not null).ToList();
            var total = _gone.GetValueOrDefault(id);
            foreach (var live in reporting) total = total is null ? live.Report! : MetricsReport.Sum(total, live.Report!);
            workers.Add(new WorkerView(id, total!,
                Live: reporting.Count > 0,
                SpawnedAt: reporting.Count > 0 ? reporting.Max(l => l.SpawnedAt) : null,
                RssBytes: reporting.Any(l => l.RssBytes is not null) ? reporting.Sum(l => l.RssBytes ?? 0) : null));
        }
        return new MetricsView(_spawns, [.. _restarts], _reloads, workers);
    }
}

/// <summary>One worker id: its counters summed over every process it had, its gauges over the live ones.</summary>
/// <param name="Live">A live process of this id has reported: the gauges are meaningful.</param>
/// <param name="SpawnedAt">The youngest live process's start (a <see cref="Stopwatch"/> timestamp).</param>
internal sealed record WorkerView(int Id, MetricsReport Totals, bool Live, long? SpawnedAt, long? RssBytes);
