namespace Mica;

/// <summary>The server's configuration, validated once at the edge (the CLI) and trusted after.</summary>
internal sealed record ServerOptions
{
    public required string Target { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8000;
    /// <summary>A Unix domain socket to listen on instead of host and port.</summary>
    public string? Uds { get; init; }
    public int? UdsPermissions { get; init; }
    public string Interface { get; init; } = "auto";
    public string Loop { get; init; } = "auto";
    /// <summary><c>--task-impl</c>: asyncio or rust.</summary>
    public string TaskImpl { get; init; } = "asyncio";
    public int Backlog { get; init; } = 1024;
    /// <summary>Requests handed to the app at once per worker; Granian's default is backlog / workers.</summary>
    public int Backpressure { get; init; } = 1024;
    /// <summary>WSGI threads per worker; null: half the backpressure (Granian's default).</summary>
    public int? BlockingThreads { get; init; }
    public int BlockingThreadsIdleTimeoutSeconds { get; init; } = 30;
    public bool WebSockets { get; init; } = true;
    public string Http { get; init; } = "auto";
    /// <summary>dotenv files for the workers' environment (<see cref="Mica.EnvFiles"/>).</summary>
    public IReadOnlyList<string> EnvFiles { get; init; } = [];
    public IReadOnlyList<Mica.Server.Http.StaticMount> StaticMounts { get; init; } = [];
    public string? StaticDirToFile { get; init; }
    public int StaticExpiresSeconds { get; init; } = 86_400;
    public Mica.Server.Hosting.Http2Settings Http2 { get; init; } = new();
    /// <summary>The <c>--limit-*</c>, <c>--timeout-keep-alive</c> and <c>--min-*-rate</c> options.</summary>
    public Mica.Server.Hosting.Limits Limits { get; init; } = new();
    /// <summary>Null: cleartext.</summary>
    public Mica.Server.Hosting.TlsConfig? Tls { get; init; }
    public int HeaderReadTimeoutMs { get; init; } = 30_000;
    /// <summary><c>--http1-buffer-size</c>: what Kestrel buffers of a connection's input (<see cref="Mica.Server.Hosting.WorkerConfig.Http1BufferSize"/>).</summary>
    public int Http1BufferSize { get; init; } = 417_792;
    /// <summary><c>--runtime-threads</c> (1 with <c>--runtime-mode st</c>): each worker's socket I/O threads; null: .NET's choice.</summary>
    public int? RuntimeThreads { get; init; }
    /// <summary><c>--runtime-blocking-threads</c>: the most threads each worker's .NET pool may grow to; null: .NET's default.</summary>
    public int? RuntimeBlockingThreads { get; init; }
    public bool KeepAlive { get; init; } = true;
    public string UrlPathPrefix { get; init; } = "";
    public bool Factory { get; init; }
    public required string WorkingDir { get; init; }
    public string LogLevel { get; init; } = "info";
    /// <summary><c>--log-config</c>: the JSON text of the dictConfig; null without one.</summary>
    public string? LogConfig { get; init; }
    /// <summary><c>--access-log</c>: the line format; null when off.</summary>
    public string? AccessLogFormat { get; init; }
    /// <summary>Null: wait for workers to stop for as long as they take (Granian's default).</summary>
    public int? WorkersKillTimeoutSeconds { get; init; }
    public string? Python { get; init; }
    public int Workers { get; init; } = 1;
    public bool RespawnFailedWorkers { get; init; }
    public double RespawnIntervalSeconds { get; init; } = 3.5;
    /// <summary>Null: workers live as long as they like.</summary>
    public int? WorkersLifetimeSeconds { get; init; }
    /// <summary>Null: no memory limit.</summary>
    public int? WorkersMaxRssMiB { get; init; }
    public int RssSampleIntervalSeconds { get; init; } = 30;
    public int RssSamples { get; init; } = 1;
    public string? ProcessName { get; init; }
    public string? PidFile { get; init; }
    public bool Reload { get; init; }
    public IReadOnlyList<string> ReloadPaths { get; init; } = [];
    public IReadOnlyList<string> ReloadIgnoreDirs { get; init; } = [];
    public IReadOnlyList<string> ReloadIgnorePatterns { get; init; } = [];
    public IReadOnlyList<string> ReloadIgnorePaths { get; init; } = [];
    public int ReloadTickMs { get; init; } = 50;
    public bool ReloadIgnoreWorkerFailure { get; init; }
    /// <summary><c>--proxy-headers</c> (uvicorn's): believe proxy headers from <see cref="ForwardedAllowIps"/>.</summary>
    public bool ProxyHeaders { get; init; } = true;
    /// <summary><c>--forwarded-allow-ips</c>, already validated (<see cref="Mica.Server.Http.TrustedProxies"/>).</summary>
    public string ForwardedAllowIps { get; init; } = Mica.Server.Http.TrustedProxies.Default;
    /// <summary><c>--metrics</c>: the master serves Prometheus metrics at <see cref="MetricsAddress"/>:<see cref="MetricsPort"/>.</summary>
    public bool Metrics { get; init; }
    public string MetricsAddress { get; init; } = "127.0.0.1";
    /// <summary>0: any free port (the log says which).</summary>
    public int MetricsPort { get; init; } = 9090;
    /// <summary>How often workers report their counters to the master.</summary>
    public int MetricsScrapeIntervalSeconds { get; init; } = 15;
}
