using System.Text.Json.Serialization;
using Mica.Server.Python;

namespace Mica.Server.Hosting;

/// <summary>
/// Everything a worker needs to know, sent by the master as the first line on the worker's control
/// pipe (JSON). Validated by the master; the worker trusts it.
/// </summary>
public sealed record WorkerConfig
{
    public required int WorkerId { get; init; }
    public required string Target { get; init; }
    public required string Interface { get; init; }       // auto | asgi | asginl | rsgi | wsgi
    public bool Factory { get; init; }
    public required string WorkingDir { get; init; }
    /// <summary>The interpreter to embed, as the master found it (<see cref="Python.Interpreter.Probe"/>).</summary>
    public required PythonInstall Python { get; init; }
    public string Loop { get; init; } = "auto";
    /// <summary><c>--task-impl</c>: <c>asyncio</c> (an <c>asyncio.Task</c> per request) or <c>rust</c> (Mica's direct driving).</summary>
    public string TaskImpl { get; init; } = "asyncio";
    public required int ListenFd { get; init; }
    public string UrlPathPrefix { get; init; } = "";
    /// <summary>The listening socket's path when it is a Unix domain socket (the scope's server).</summary>
    public string? UnixSocket { get; init; }
    public int HeaderReadTimeoutMs { get; init; } = 30_000;
    /// <summary>
    /// <c>--http1-buffer-size</c>: as hyper's read buffer limit in Granian, the most Kestrel holds of
    /// a connection's unread input; the request line and headers must fit in it too (431 beyond).
    /// </summary>
    public int Http1BufferSize { get; init; } = 417_792;
    /// <summary>
    /// <c>--runtime-threads</c>: the worker's socket I/O threads (".NET Sockets"), which with inline
    /// completions are where Kestrel parses and writes, as tokio's runtime threads are in Granian.
    /// Set through DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT when the worker starts; null: .NET's choice.
    /// </summary>
    public int? RuntimeThreads { get; init; }
    /// <summary>
    /// <c>--runtime-blocking-threads</c>: Granian's pool for blocking work is, in a worker, .NET's
    /// thread pool (Kestrel's continuations, file reads): the most threads it may grow to (at least
    /// one per core, which .NET requires). Null: .NET's default.
    /// </summary>
    public int? RuntimeBlockingThreads { get; init; }
    public bool KeepAlive { get; init; } = true;
    public string LogLevel { get; init; } = "info";
    /// <summary><c>--log-config</c>: the JSON text of the dictConfig; null without one.</summary>
    public string? LogConfig { get; init; }
    /// <summary><c>--access-log</c>: the line format (<see cref="Http.AccessLogFormat"/>); null when off.</summary>
    public string? AccessLogFormat { get; init; }
    public double ShutdownTimeoutSeconds { get; init; } = 30;
    public string? ProcessName { get; init; }
    /// <summary>Worker processes in all (WSGI's <c>wsgi.multiprocess</c>).</summary>
    public int Workers { get; init; } = 1;
    /// <summary>Requests handed to the app at once, at most (<c>--backpressure</c>).</summary>
    public int Backpressure { get; init; } = 1024;
    /// <summary>WSGI threads at most; null: Granian's default, half the backpressure.</summary>
    public int? BlockingThreads { get; init; }
    public int BlockingThreadsIdleTimeoutSeconds { get; init; } = 30;
    /// <summary><c>--ws</c>: ASGI websockets (off: upgrade requests reach the app as plain http).</summary>
    public bool WebSockets { get; init; } = true;
    /// <summary><c>--http</c>: auto (HTTP/1.1 and HTTP/2), 1 or 2.</summary>
    public string Http { get; init; } = "auto";
    public Http2Settings Http2 { get; init; } = new();
    public Limits Limits { get; init; } = new();
    /// <summary>Null: cleartext.</summary>
    public TlsConfig? Tls { get; init; }
    public IReadOnlyList<Http.StaticMount> StaticMounts { get; init; } = [];
    public string? StaticDirToFile { get; init; }
    public int StaticExpiresSeconds { get; init; } = 86_400;
    /// <summary><c>--proxy-headers</c>: believe X-Forwarded-* and Forwarded from <see cref="ForwardedAllowIps"/>.</summary>
    public bool ProxyHeaders { get; init; } = true;
    /// <summary><c>--forwarded-allow-ips</c>, validated by the master (<see cref="Http.TrustedProxies"/>).</summary>
    public string ForwardedAllowIps { get; init; } = Mica.Server.Http.TrustedProxies.Default;
    /// <summary><c>--metrics</c>: how often to report to the master (<c>--metrics-scrape-interval</c>); null when off.</summary>
    public int? MetricsIntervalSeconds { get; init; }
}

/// <summary>Granian's <c>--http2-*</c> options.</summary>
public sealed record Http2Settings
{
    public int MaxConcurrentStreams { get; init; } = 200;
    public int InitialConnectionWindowSize { get; init; } = 1_048_576;
    public int InitialStreamWindowSize { get; init; } = 1_048_576;
    public int MaxFrameSize { get; init; } = 16_384;
    public int MaxHeadersSize { get; init; } = 16_777_216;
    public int? KeepAliveIntervalMs { get; init; }
    public int KeepAliveTimeoutSeconds { get; init; } = 20;
}

/// <summary>
/// The limits and timeouts that keep big, slow or many clients from wearing a worker down
/// (<c>--limit-*</c>, <c>--timeout-keep-alive</c>, <c>--min-*-rate</c>), onto Kestrel's limits.
/// </summary>
public sealed record Limits
{
    /// <summary>Bytes; 414 beyond (and never more than <see cref="WorkerConfig.Http1BufferSize"/>).</summary>
    public int RequestLine { get; init; } = 8192;
    /// <summary>Header fields; 431 beyond.</summary>
    public int RequestFields { get; init; } = 100;
    /// <summary>Bytes of the whole header section; 431 beyond (and never more than <see cref="WorkerConfig.Http1BufferSize"/>).</summary>
    public int RequestFieldsSize { get; init; } = 32_768;
    /// <summary>Bytes; 413 beyond. Null: unlimited (the app decides, as in Granian).</summary>
    public long? RequestBody { get; init; }
    /// <summary>Open connections per worker; requests on one beyond get 503. Null: unlimited.</summary>
    public int? Connections { get; init; }
    /// <summary>How long a connection may stay idle: before its first request, between two.</summary>
    public int KeepAliveTimeoutSeconds { get; init; } = 30;
    /// <summary>Bytes per second after <see cref="RateGrace"/>; 0: no minimum.</summary>
    public int MinRequestBodyRate { get; init; } = 240;
    /// <summary>Bytes per second after <see cref="RateGrace"/>; 0: no minimum.</summary>
    public int MinResponseRate { get; init; } = 240;

    /// <summary>How long a transfer may run below the minimum rate before it is cut (Kestrel's default).</summary>
    public static readonly TimeSpan RateGrace = TimeSpan.FromSeconds(5);
}

/// <summary>What a worker tells the master, one JSON object per line.</summary>
public sealed record WorkerMessage
{
    public const string Ready = "ready", Failed = "failed", Metrics = "metrics";

    public required string Event { get; init; }
    /// <summary>For <see cref="Failed"/>: load | lifespan | internal.</summary>
    public string? Reason { get; init; }
    public string? Message { get; init; }
    public string? Traceback { get; init; }
    /// <summary>For <see cref="Metrics"/>: the worker's counters now.</summary>
    public global::Mica.Server.Metrics.MetricsReport? Report { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WorkerConfig))]
[JsonSerializable(typeof(PythonInstall))]
[JsonSerializable(typeof(WorkerMessage))]
[JsonSerializable(typeof(Metrics.MetricsReport))]
[JsonSerializable(typeof(Http2Settings))]
[JsonSerializable(typeof(Limits))]
[JsonSerializable(typeof(TlsConfig))]
[JsonSerializable(typeof(Http.StaticMount))]
public sealed partial class ControlJson : JsonSerializerContext;
