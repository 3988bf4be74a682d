using Mica.Server.Hosting;

namespace Mica.Server.Http;

/// <summary>What every request needs from its worker, whatever the interface serving it.</summary>
internal sealed class ExchangeServices(ConnectionDrain drain, bool keepAlive, int backpressure, StaticFiles? staticFiles, AccessLog? accessLog,
    ForwardedHeaders forwarding, ConnectionLimit? connectionLimit = null, Metrics.WorkerMetrics? metrics = null)
{
    /// <summary><c>--limit-concurrency</c>: null when unlimited.</summary>
    public ConnectionLimit? ConnectionLimit { get; } = connectionLimit;

    /// <summary><c>--metrics</c>: null when off.</summary>
    public Metrics.WorkerMetrics? Metrics { get; } = metrics;

    /// <summary><c>--access-log</c>: null when off.</summary>
    public AccessLog? AccessLog { get; } = accessLog;

    /// <summary><c>--proxy-headers</c>: applied to each request before it becomes an exchange.</summary>
    public ForwardedHeaders Forwarding { get; } = forwarding;

    /// <summary><c>--static-path-*</c>: requests Kestrel answers from files before the app sees them.</summary>
    public StaticFiles? StaticFiles { get; } = staticFiles;

    public ConnectionDrain Drain { get; } = drain;

    /// <summary>Off with --no-http1-keep-alive, and for every response once the worker drains.</summary>
    public bool KeepAlive => keepAlive && Drain.KeepAlive;

    /// <summary>
    /// <c>--backpressure</c>: at most this many requests are handed to the app at once; the rest wait
    /// (still connected, in arrival order) for a slot. Granian counts connections; requests are what
    /// load the app, so Mica counts those.
    /// </summary>
    public SemaphoreSlim Backpressure { get; } = new(backpressure, backpressure);
}
