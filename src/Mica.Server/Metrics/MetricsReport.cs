namespace Mica.Server.Metrics;

/// <summary>
/// A worker's metrics at one moment, sent to the master every <c>--metrics-scrape-interval</c>
/// (a <see cref="Hosting.WorkerMessage"/> of event <c>metrics</c>). Counters count from the
/// worker's start; the master keeps what earlier workers of the same id counted (see
/// <c>Mica.Metrics.MetricsBook</c>). The names follow Granian's metrics where it has one.
/// </summary>
public sealed record MetricsReport
{
    // Gauges: what is true now.
    public long ConnectionsActive { get; init; }
    public long RequestsInFlight { get; init; }
    public long BlockingThreads { get; init; }
    public long BlockingQueue { get; init; }

    // Counters.
    public long ConnectionsHandled { get; init; }
    public long ConnectionsErr { get; init; }
    public long RequestsHandled { get; init; }
    public long StaticRequestsHandled { get; init; }
    public long StaticRequestsErr { get; init; }
    /// <summary>Microseconds; null where not measured (ASGI, RSGI: there is no pool, see the README).</summary>
    public long? BlockingIdleCumulative { get; init; }
    public long? BlockingBusyCumulative { get; init; }
    public long? PyWaitCumulative { get; init; }
    /// <summary>Completed requests by status class: 1xx, 2xx, 3xx, 4xx, 5xx.</summary>
    public long[] Statuses { get; init; } = new long[StatusClasses];
    /// <summary>Completed requests by duration, one count per bucket of <see cref="RequestDurations.Bounds"/> and a last one for longer (not cumulative).</summary>
    public long[] DurationBuckets { get; init; } = new long[RequestDurations.Bounds.Length + 1];
    public double DurationSum { get; init; }

    public const int StatusClasses = 5;

    /// <summary>The counters only, gauges zero: what a worker that is gone still contributes.</summary>
    public MetricsReport CountersOnly() => this with { ConnectionsActive = 0, RequestsInFlight = 0, BlockingThreads = 0, BlockingQueue = 0 };

    /// <summary>Everything added up (a missing measure plus a measure is the measure).</summary>
    public static MetricsReport Sum(MetricsReport a, MetricsReport b) => new()
    {
        ConnectionsActive = a.ConnectionsActive + b.ConnectionsActive,
        RequestsInFlight = a.RequestsInFlight + b.RequestsInFlight,
        BlockingThreads = a.BlockingThreads + b.BlockingThreads,
        BlockingQueue = a.BlockingQueue + b.BlockingQueue,
        ConnectionsHandled = a.ConnectionsHandled + b.ConnectionsHandled,
        ConnectionsErr = a.ConnectionsErr + b.ConnectionsErr,
        RequestsHandled = a.RequestsHandled + b.RequestsHandled,
        StaticRequestsHandled = a.StaticRequestsHandled + b.StaticRequestsHandled,
        StaticRequestsErr = a.StaticRequestsErr + b.StaticRequestsErr,
        BlockingIdleCumulative = Add(a.BlockingIdleCumulative, b.BlockingIdleCumulative),
        BlockingBusyCumulative = Add(a.BlockingBusyCumulative, b.BlockingBusyCumulative),
        PyWaitCumulative = Add(a.PyWaitCumulative, b.PyWaitCumulative),
        Statuses = AddEach(a.Statuses, b.Statuses),
        DurationBuckets = AddEach(a.DurationBuckets, b.DurationBuckets),
        DurationSum = a.DurationSum + b.DurationSum,
    };

    private static long? Add(long? a, long? b) => a is null ? b : b is null ? a : a + b;

    private static long[] AddEach(long[] a, long[] b)
    {
        var sum = new long[Math.Max(a.Length, b.Length)];
        for (var i = 0; i < sum.Length; i++) sum[i] = (i < a.Length ? a[i] : 0) + (i < b.Length ? b[i] : 0);
        return sum;
    }
}

/// <summary>The request duration histogram's buckets, shared by the workers (counting) and the master (exposing).</summary>
public static class RequestDurations
{
    /// <summary>Upper bounds in seconds (Prometheus' <c>le</c>), from half a millisecond to ten seconds.</summary>
    public static readonly double[] Bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
}
