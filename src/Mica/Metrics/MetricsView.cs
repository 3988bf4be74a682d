using System.Diagnostics;
using System.Globalization;
using Mica.Server.Metrics;

namespace Mica.Metrics;

/// <summary>
/// What a scrape returns, frozen by the supervisor loop (<see cref="MetricsBook.View"/>) and rendered
/// by the exporter. Granian's metrics keep Granian's names (prefix <c>granian_</c>, label
/// <c>worker</c>), so that dashboards made for Granian work unchanged; Mica's own are prefixed
/// <c>mica_</c> and follow Prometheus' naming (<c>_total</c>, base units).
/// </summary>
internal sealed record MetricsView(long Spawns, long[] Restarts, long Reloads, IReadOnlyList<WorkerView> Workers)
{
    public static readonly MetricsView Empty = new(0, new long[Enum.GetValues<RestartReason>().Length], 0, []);

    public string Render()
    {
        var text = new PrometheusText();
        long Restarted(RestartReason reason) => Restarts[(int)reason];

        text.Family("granian_workers_spawns", "counter", "Number of worker processes spawned").Sample("granian_workers_spawns", Spawns);
        text.Family("granian_workers_respawns_for_err", "counter", "Number of workers respawned after an unexpected exit")
            .Sample("granian_workers_respawns_for_err", Restarted(RestartReason.Error));
        text.Family("granian_workers_respawns_for_lifetime", "counter", "Number of workers respawned for exceeding --workers-lifetime")
            .Sample("granian_workers_respawns_for_lifetime", Restarted(RestartReason.Lifetime));
        text.Family("granian_workers_respawns_for_rss", "counter", "Number of workers respawned for exceeding --workers-max-rss")
            .Sample("granian_workers_respawns_for_rss", Restarted(RestartReason.Rss));

        var live = Workers.Where(w => w.Live).ToList();
        PerWorker(text, live, "granian_worker_lifetime", "gauge", "Seconds since the worker process started",
            w => w.SpawnedAt is { } at ? Math.Round(Stopwatch.GetElapsedTime(at).TotalSeconds, 3) : null);
        PerWorker(text, live, "granian_connections_active", "gauge", "Open connections", w => w.Totals.ConnectionsActive);
        PerWorker(text, Workers, "granian_connections_handled", "counter", "Connections accepted", w => w.Totals.ConnectionsHandled);
        PerWorker(text, Workers, "granian_connections_err", "counter", "Connections that failed (TLS handshake, connection error)",
            w => w.Totals.ConnectionsErr);
        PerWorker(text, Workers, "granian_requests_handled", "counter", "Requests received (static files included)", w => w.Totals.RequestsHandled);
        PerWorker(text, Workers, "granian_static_requests_handled", "counter", "Requests answered from static files",
            w => w.Totals.StaticRequestsHandled);
        PerWorker(text, Workers, "granian_static_requests_err", "counter", "Static file requests answered with a status of 400 or more",
            w => w.Totals.StaticRequestsErr);
        PerWorker(text, live, "granian_blocking_threads", "gauge", "Threads that run the app (1 for ASGI and RSGI)", w => w.Totals.BlockingThreads);
        PerWorker(text, live, "granian_blocking_queue", "gauge", "Requests and events waiting for a thread that runs the app",
            w => w.Totals.BlockingQueue);
        PerWorker(text, Workers, "granian_blocking_idle_cumulative", "counter", "Microseconds the WSGI threads waited for work",
            w => w.Totals.BlockingIdleCumulative);
        PerWorker(text, Workers, "granian_blocking_busy_cumulative", "counter", "Microseconds the WSGI threads ran the app and wrote responses",
            w => w.Totals.BlockingBusyCumulative);
        PerWorker(text, Workers, "granian_py_wait_cumulative", "counter", "Microseconds the WSGI threads waited for the GIL",
            w => w.Totals.PyWaitCumulative);

        text.Family("mica_requests_total", "counter", "Requests completed, by status class");
        foreach (var w in Workers)
            for (var i = 0; i < MetricsReport.StatusClasses; i++)
                text.Sample("mica_requests_total", w.Totals.Statuses.ElementAtOrDefault(i), ("worker", Id(w)), ("class", $"{i + 1}xx"));
        PerWorker(text, live, "mica_requests_in_flight", "gauge", "Requests received and not yet completed", w => w.Totals.RequestsInFlight);
        text.Family("mica_request_duration_seconds", "histogram", "Time from a request's arrival to its response's end (websockets excluded)");
        foreach (var w in Workers)
            text.Histogram("mica_request_duration_seconds", [("worker", Id(w))], RequestDurations.Bounds, Buckets(w.Totals), w.Totals.DurationSum);
        PerWorker(text, live, "mica_worker_rss_bytes", "gauge", "Resident memory of the worker process", w => w.RssBytes);
        text.Family("mica_worker_restarts_total", "counter", "Workers replaced by a new process, by reason");
        foreach (var reason in Enum.GetValues<RestartReason>())
            text.Sample("mica_worker_restarts_total", Restarted(reason), ("reason", reason.ToString().ToLowerInvariant()));
        text.Family("mica_reloads_total", "counter", "Reloads after source changes (--reload)").Sample("mica_reloads_total", Reloads);
        return text.ToString();
    }

    private static string Id(WorkerView w) => w.Id.ToString(CultureInfo.InvariantCulture);

    private static long[] Buckets(MetricsReport report) =>
        report.DurationBuckets.Length == RequestDurations.Bounds.Length + 1 ? report.DurationBuckets : new long[RequestDurations.Bounds.Length + 1];

    /// <summary>A family with one sample per worker that has a value (none: only HELP and TYPE).</summary>
    private static void PerWorker(PrometheusText text, IEnumerable<WorkerView> workers, string name, string type, string help, Func<WorkerView, long?> value)
    {
        text.Family(name, type, help);
        foreach (var w in workers)
            if (value(w) is { } v) text.Sample(name, v, ("worker", Id(w)));
    }

    private static void PerWorker(PrometheusText text, IEnumerable<WorkerView> workers, string name, string type, string help, Func<WorkerView, double?> value)
    {
        text.Family(name, type, help);
        foreach (var w in workers)
            if (value(w) is { } v) text.Sample(name, v, ("worker", Id(w)));
    }
}
