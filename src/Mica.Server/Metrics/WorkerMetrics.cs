using System.Diagnostics;
using System.Numerics;

namespace Mica.Server.Metrics;

/// <summary>
/// The worker's request counters (<c>--metrics</c>), updated by Kestrel's threads for every request:
/// when Kestrel creates the request's context (<see cref="RequestStarted"/>) and when it disposes of
/// it, once the response is complete and its status final (<see cref="RequestEnded"/>). Static files
/// are requests too, as in Granian.
///
/// The hot path takes no lock and allocates nothing: a timestamp and four <see cref="Interlocked"/>
/// additions on a fixed array of longs. The array holds one block of counters per CPU (a stripe, chosen
/// by the CPU the thread runs on, far enough from the next block not to share a cache line), so that
/// Kestrel threads on different cores do not fight over one cache line; <see cref="Snapshot"/> adds
/// the stripes up, every scrape interval.
/// </summary>
internal sealed class WorkerMetrics
{
    // One stripe's cells.
    private const int Started = 0, StaticHandled = 1, StaticFailed = 2, Statuses = 3, DurationTicks = Statuses + MetricsReport.StatusClasses,
        Buckets = DurationTicks + 1;
    private static readonly int BucketCount = RequestDurations.Bounds.Length + 1;
    /// <summary>Cells per stripe: the cells used, then at least 64 bytes of nothing before the next stripe.</summary>
    private static readonly int Stride = Buckets + BucketCount + 8;

    private static readonly long[] BoundTicks = [.. RequestDurations.Bounds.Select(s => (long)Math.Ceiling(s * Stopwatch.Frequency))];

    private readonly long[] _cells;
    private readonly int _stripeMask;

    public WorkerMetrics()
    {
        var stripes = (int)Math.Min(BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount), 64);
        _stripeMask = stripes - 1;
        _cells = new long[stripes * Stride];
    }

    private int Stripe() => (Thread.GetCurrentProcessorId() & _stripeMask) * Stride;

    /// <summary>Kestrel thread, as the request's context is created: counts it.</summary>
    public void RequestStarted() => Interlocked.Increment(ref _cells[Stripe() + Started]);

    /// <summary>
    /// Kestrel thread, once the response is complete: its status class and, unless it became a
    /// websocket (whose request lasts as long as the socket), its duration.
    /// </summary>
    public void RequestEnded(long startedAt, int status, bool isStatic, bool upgraded = false)
    {
        var stripe = Stripe();
        Interlocked.Increment(ref _cells[stripe + Statuses + Math.Clamp(status / 100, 1, 5) - 1]);
        if (isStatic)
        {
            Interlocked.Increment(ref _cells[stripe + StaticHandled]);
            if (status >= 400) Interlocked.Increment(ref _cells[stripe + StaticFailed]);
        }
        if (upgraded) return;
        var ticks = Stopwatch.GetTimestamp() - startedAt;
        var bucket = 0;
        while (bucket < BoundTicks.Length && ticks > BoundTicks[bucket]) bucket++;
        Interlocked.Increment(ref _cells[stripe + Buckets + bucket]);
        Interlocked.Add(ref _cells[stripe + DurationTicks], ticks);
    }

    /// <summary>Adds up the stripes (any thread; each cell is read once, atomically).</summary>
    public MetricsReport Snapshot(ConnectionCounts connections, BlockingStats blocking)
    {
        var cells = new long[Stride];
        // Statuses before starts: a request that ends in between is then counted as started too,
        // so in-flight (started minus ended) never goes below zero.
        for (var stripe = 0; stripe < _cells.Length; stripe += Stride)
            for (var i = Statuses; i < Stride; i++) cells[i] += Volatile.Read(ref _cells[stripe + i]);
        for (var stripe = 0; stripe < _cells.Length; stripe += Stride)
            for (var i = 0; i < Statuses; i++) cells[i] += Volatile.Read(ref _cells[stripe + i]);
        var statuses = cells.AsSpan(Statuses, MetricsReport.StatusClasses).ToArray();
        long ended = 0;
        foreach (var n in statuses) ended += n;
        return new MetricsReport
        {
            ConnectionsActive = connections.Active,
            ConnectionsHandled = connections.Handled,
            ConnectionsErr = connections.Failed,
            RequestsHandled = cells[Started],
            RequestsInFlight = Math.Max(0, cells[Started] - ended),
            StaticRequestsHandled = cells[StaticHandled],
            StaticRequestsErr = cells[StaticFailed],
            BlockingThreads = blocking.Threads,
            BlockingQueue = blocking.Queued,
            BlockingIdleCumulative = blocking.IdleMicroseconds,
            BlockingBusyCumulative = blocking.BusyMicroseconds,
            PyWaitCumulative = blocking.GilWaitMicroseconds,
            Statuses = statuses,
            DurationBuckets = cells.AsSpan(Buckets, BucketCount).ToArray(),
            DurationSum = (double)cells[DurationTicks] / Stopwatch.Frequency,
        };
    }
}

/// <summary>A worker's connections: open now, accepted since it started, and failed (see <see cref="Hosting.ConnectionDrain"/>).</summary>
internal readonly record struct ConnectionCounts(long Active, long Handled, long Failed);

/// <summary>
/// The threads that run the app: how many, how much work waits for them, and (WSGI's pool only)
/// the time they spent idle, busy, and waiting for the GIL, in microseconds.
/// </summary>
internal readonly record struct BlockingStats(long Threads, long Queued, long? IdleMicroseconds = null, long? BusyMicroseconds = null,
    long? GilWaitMicroseconds = null);
