using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;

namespace Mica.Cli;

/// <summary>
/// Every command-line option, with Granian's names, types, defaults and ranges (from its
/// <c>granian/cli.py</c>), plus Mica's own (<c>--python</c>). Each also reads the environment
/// variable <c>MICA_&lt;NAME&gt;</c> or, failing that, <c>GRANIAN_&lt;NAME&gt;</c>, where NAME is
/// Granian's parameter name (so <c>--ws</c> reads <c>MICA_WEBSOCKETS</c>, as Granian does); an option
/// taken from uvicorn may also read uvicorn's own variable (<c>FORWARDED_ALLOW_IPS</c>) last.
/// Every Granian option is implemented; docs/granian-compat.md says how each maps onto Mica.
/// </summary>
internal sealed partial class OptionTable
{
    /// <summary>One option: its flag, the negating flag of a --x/--no-x pair, its env name, and its section of <c>--help</c>.</summary>
    public sealed record Entry(Option Option, string EnvName, string Section, Option<bool>? Negation = null, char? EnvSplit = null, string? PlainEnv = null);

    private readonly List<Entry> _entries = [];
    private string _section = "";
    public IReadOnlyList<Entry> Entries => _entries;

    public readonly Option<string> Host = Address("--host", "Host address to bind to", "127.0.0.1");
    public readonly Option<int> Port = Int("--port", "Port to bind to (0: any free port)", 8000, min: 0, max: 65535);
    public readonly Option<string?> Uds = OptionalStr("--uds", "Unix Domain Socket to bind to (instead of --host/--port)");
    public readonly Option<int?> UdsPermissions = Octal("--uds-permissions", "Unix Domain Socket file permissions (octal, e.g. 660)");
    public readonly Option<string> Interface = Choice("--interface", "Application interface type (auto: detected from the app, see docs)", "auto", "auto", "asgi", "asginl", "rsgi", "wsgi");
    public readonly Option<string> Http = Choice("--http", "HTTP version", "auto", "auto", "1", "2");
    public readonly Option<string> Loop = Choice("--loop", "Event loop implementation", "auto", "auto", "asyncio", "rloop", "uvloop", "winloop");
    public readonly Option<int> Backlog = Int("--backlog", "Maximum number of connections to hold in backlog (globally)", 1024, min: 128);
    public readonly Option<int> Http1HeaderReadTimeout = Int("--http1-header-read-timeout", "Sets a timeout (in milliseconds) to read headers", 30_000, min: 1, max: 60_000);
    public readonly Option<int?> RuntimeThreads = OptionalInt("--runtime-threads", "Number of runtime threads (per worker): Kestrel's socket I/O threads [default: .NET's choice]", min: 1);
    public readonly Option<string> RuntimeMode = Choice("--runtime-mode", "Runtime mode to use (single/multi threaded): st is one socket I/O thread", "auto", "auto", "mt", "st");
    public readonly Option<int?> RuntimeBlockingThreads = OptionalInt("--runtime-blocking-threads", "Number of runtime I/O blocking threads (per worker): the most threads .NET's pool may grow to [default: .NET's]", min: 1);
    public readonly Option<string> TaskImpl = Choice("--task-impl", "Async task implementation to use (asyncio: an asyncio.Task per request; rust: Mica steps each request's coroutine itself, from the dispatch on)", "asyncio", "asyncio", "rust");
    public readonly Option<bool> Http1PipelineFlush = Flag("--http1-pipeline-flush", "Aggregates HTTP/1 flushes to better support pipelined responses (no Kestrel equivalent: ignored)", false);
    public readonly Option<int> Http1BufferSize = Int("--http1-buffer-size", "Sets the maximum buffer size for HTTP/1 connections (the request line and headers must fit)", 417_792, min: 8192);
    public readonly Option<bool> Http1KeepAlive = Flag("--http1-keep-alive", "Enables or disables HTTP/1 keep-alive", true);
    public readonly Option<string?> UrlPathPrefix = OptionalStr("--url-path-prefix", "URL path prefix the app is mounted on");
    public readonly Option<bool> Factory = Flag("--factory", "Treat target as a factory function, that should be invoked to build the actual target", false);
    public readonly Option<string?> WorkingDir = OptionalStr("--working-dir", "Set the working directory");
    public readonly Option<bool> LogEnabled = Flag("--log", "Enable logging", true);
    public readonly Option<string> LogLevel = Choice("--log-level", "Log level", "info", "critical", "error", "warning", "warn", "info", "debug", "notset");
    public readonly Option<int?> WorkersKillTimeout = Duration("--workers-kill-timeout", "The amount of time in seconds to wait for killing workers that refused to gracefully stop", min: 1, max: 1800);
    public readonly Option<int> Workers = Int("--workers", "Number of worker processes", 1, min: 1);
    public readonly Option<bool> RespawnFailedWorkers = Flag("--respawn-failed-workers", "Enable workers respawn on unexpected exit", false);
    public readonly Option<double> RespawnInterval = Float("--respawn-interval", "The number of seconds to sleep between workers respawn", 3.5);
    public readonly Option<int?> RssSampleInterval = Duration("--rss-sample-interval", "The sample rate in seconds for the resource monitor", 1, 300, 30);
    public readonly Option<int> RssSamples = Int("--rss-samples", "The number of consecutive samples to consider a worker over resource limit", 1, min: 1);
    public readonly Option<int?> WorkersLifetime = Duration("--workers-lifetime", "The maximum amount of time in seconds a worker will be kept alive before respawn", 60, null);
    public readonly Option<int?> WorkersMaxRss = OptionalInt("--workers-max-rss", "The maximum amount of memory (in MiB) a worker can consume before respawn", min: 1);
    public readonly Option<string?> ProcessName = OptionalStr("--process-name", "Set a custom name for processes (ps, /proc/PID/comm)");
    public readonly Option<string?> PidFile = OptionalStr("--pid-file", "A path to write the PID in (locked while running, removed on exit)");
    public readonly Option<bool> Reload = Flag("--reload", "Enable auto reload on application's files changes", false);
    public readonly Option<string[]> ReloadPaths = Many("--reload-paths", "Paths to watch for changes [default: working directory]");
    public readonly Option<string[]> ReloadIgnoreDirs = Many("--reload-ignore-dirs", "Names of directories to ignore changes for");
    public readonly Option<string[]> ReloadIgnorePatterns = Many("--reload-ignore-patterns", "File/directory name patterns (regex) to ignore changes for");
    public readonly Option<string[]> ReloadIgnorePaths = Many("--reload-ignore-paths", "Absolute paths to ignore changes for");
    public readonly Option<int> ReloadTick = Int("--reload-tick", "How long (ms) changes must settle before reloading", 50, min: 50, max: 5000);
    public readonly Option<bool> ReloadIgnoreWorkerFailure = Flag("--reload-ignore-worker-failure", "With --reload: keep serving the error (503) until a change fixes a worker that fails", false);
    public readonly Option<bool> WebSockets = Flag("--ws", "Enable websockets handling", true);
    public readonly Option<int?> BlockingThreads = OptionalInt("--blocking-threads", "Number of blocking threads (per worker) [default: wsgi: backpressure / 2; others: 1]", min: 1);
    public readonly Option<int?> BlockingThreadsIdleTimeout = Duration("--blocking-threads-idle-timeout", "Idle timeout for blocking threads, in seconds", 5, 600, 30);
    public readonly Option<int?> Backpressure = OptionalInt("--backpressure", "Maximum number of requests to process concurrently (per worker) [default: backlog / workers]", min: 1);
    public readonly Option<bool> Http2AdaptiveWindow = Flag("--http2-adaptive-window", "Sets whether to use an adaptive flow control for HTTP2 (no Kestrel equivalent: ignored)", false);
    public readonly Option<int> Http2InitialConnectionWindowSize = Int("--http2-initial-connection-window-size", "Sets the max connection-level flow control for HTTP2", 1_048_576, min: 1024);
    public readonly Option<int> Http2InitialStreamWindowSize = Int("--http2-initial-stream-window-size", "Sets the SETTINGS_INITIAL_WINDOW_SIZE option for HTTP2 stream-level flow control", 1_048_576, min: 1024);
    public readonly Option<int?> Http2KeepAliveInterval = OptionalInt("--http2-keep-alive-interval", "Sets an interval (in milliseconds) for HTTP2 Ping frames", min: 1, max: 60_000);
    public readonly Option<int?> Http2KeepAliveTimeout = Duration("--http2-keep-alive-timeout", "Sets a timeout for receiving an acknowledgement of the HTTP2 keep-alive ping", 1, null, 20);
    public readonly Option<int> Http2MaxConcurrentStreams = Int("--http2-max-concurrent-streams", "Sets the SETTINGS_MAX_CONCURRENT_STREAMS option for HTTP2 connections", 200, min: 10);
    public readonly Option<int> Http2MaxFrameSize = Int("--http2-max-frame-size", "Sets the maximum frame size to use for HTTP2", 16_384, min: 16_384, max: 16_777_215);
    public readonly Option<int> Http2MaxHeadersSize = Int("--http2-max-headers-size", "Sets the max size of received header frames", 16_777_216, min: 1);
    public readonly Option<int> Http2MaxSendBufferSize = Int("--http2-max-send-buffer-size", "Set the maximum write buffer size for each HTTP/2 stream", 409_600, min: 1024);
    public readonly Option<string?> SslCertificate = OptionalStr("--ssl-certificate", "SSL certificate file (PEM, with its chain)");
    public readonly Option<string?> SslKeyfile = OptionalStr("--ssl-keyfile", "SSL key file (PEM; PKCS#8 when encrypted)");
    public readonly Option<string?> SslKeyfilePassword = OptionalStr("--ssl-keyfile-password", "SSL key password");
    public readonly Option<string> SslProtocolMin = Choice("--ssl-protocol-min", "Set the minimum supported protocol for SSL connections", "tls1.3", "tls1.2", "tls1.3");
    public readonly Option<string?> SslCa = OptionalStr("--ssl-ca", "Root SSL certificate file for client verification");
    public readonly Option<string[]> SslCrl = Many("--ssl-crl", "SSL CRL file(s)");
    public readonly Option<bool> SslClientVerify = Flag("--ssl-client-verify", "Verify clients SSL certificates", false);
    public readonly Option<string[]> StaticPathRoute = Many("--static-path-route", "Route(s) for static file serving [default: /static]");
    public readonly Option<string[]> StaticPathMount = Many("--static-path-mount", "Path(s) to mount for static file serving");
    public readonly Option<string?> StaticPathDirToFile = OptionalStr("--static-path-dir-to-file", "Serve the specified file as the index for directory listings");
    public readonly Option<int?> StaticPathExpires = Duration("--static-path-expires", "Cache headers expiration (in seconds) for static file serving; 0 to disable", 0, null, 86_400);
    public readonly Option<string[]> EnvFiles = Many("--env-files", "Environment file(s) to load (.env format)");
    public readonly Option<string?> LogConfig = OptionalStr("--log-config", "Logging configuration file (json: a Python logging.dictConfig)");
    public readonly Option<bool> AccessLog = Flag("--access-log", "Enable access log", false);
    public readonly Option<string?> AccessLogFormat = OptionalStr("--access-log-fmt", "Access log format");
    public readonly Option<bool> Metrics = Flag("--metrics", "Enable the Prometheus metrics exporter (served by the master process)", false);
    public readonly Option<int?> MetricsScrapeInterval = Duration("--metrics-scrape-interval", "The interval in seconds for metrics collection (how often workers report)", 1, 60, 15);
    public readonly Option<string> MetricsAddress = Address("--metrics-address", "The address to bind the metrics exporter to", "127.0.0.1");
    public readonly Option<int> MetricsPort = Int("--metrics-port", "The port to bind the metrics exporter to (0: any free port)", 9090, min: 0, max: 65535);
    public readonly Option<string?> Python = OptionalStr("--python", "Python interpreter to embed (default: $VIRTUAL_ENV/bin/python, else python3 on PATH)");
    // Limits and timeouts Granian has no option for, under gunicorn's and uvicorn's names.
    public readonly Option<int> LimitRequestLine = Int("--limit-request-line", "Longest request line, in bytes (414 beyond; at most --http1-buffer-size)", 8192, min: 256);
    public readonly Option<int> LimitRequestFields = Int("--limit-request-fields", "Most header fields in a request (431 beyond)", 100, min: 1);
    public readonly Option<int> LimitRequestFieldsSize = Int("--limit-request-fields-size", "Largest header section of a request, all fields together, in bytes (431 beyond; at most --http1-buffer-size)", 32_768, min: 1024);
    public readonly Option<long?> LimitRequestBody = OptionalLong("--limit-request-body", "Largest request body, in bytes (413 beyond) [default: unlimited]", min: 0);
    public readonly Option<int?> LimitConcurrency = OptionalInt("--limit-concurrency", "Most open connections per worker; a request on a connection beyond gets 503 and the connection is closed [default: unlimited]", min: 1);
    public readonly Option<int?> TimeoutKeepAlive = Duration("--timeout-keep-alive", "How long a connection may stay idle, before its first request or between two, in seconds", 1, null, 30);
    public readonly Option<int> MinRequestBodyRate = Int("--min-request-body-rate", "Slowest a request body may arrive while the app reads it, in bytes/s after a 5 s grace (0: no minimum)", 240, min: 0);
    public readonly Option<int> MinResponseRate = Int("--min-response-rate", "Slowest a client may take a response, in bytes/s after a 5 s grace (0: no minimum)", 240, min: 0);
    // uvicorn's, not Granian's (Granian leaves proxy headers to wrappers around the app).
    public readonly Option<bool> ProxyHeaders = Flag("--proxy-headers", "Use X-Forwarded-For/-Proto/-Host and Forwarded from trusted peers for the client address, scheme and host", true);
    public readonly Option<string> ForwardedAllowIps = Trusted("--forwarded-allow-ips", "Comma-separated IP addresses and CIDR networks to trust with proxy headers, '*' for all (a Unix socket's peer is always trusted)", Mica.Server.Http.TrustedProxies.Default);

    /// <summary>The options in Granian's order, which groups them; <c>--help</c> shows each group under its heading.</summary>
    public OptionTable()
    {
        _section = "Binding";
        Register(Host, "HOST");
        Register(Port, "PORT");
        Register(Uds, "UDS");
        Register(UdsPermissions, "UDS_PERMISSIONS");

        _section = "Application";
        Register(Interface, "INTERFACE");
        Register(Http, "HTTP");
        Register(WebSockets, "WEBSOCKETS");
        Register(Factory, "FACTORY");
        Register(WorkingDir, "WORKING_DIR");
        Register(UrlPathPrefix, "URL_PATH_PREFIX");
        Register(EnvFiles, "ENV_FILES", split: ':');
        Register(Python, "PYTHON");

        _section = "Workers and threads";
        Register(Workers, "WORKERS");
        Register(BlockingThreads, "BLOCKING_THREADS");
        Register(BlockingThreadsIdleTimeout, "BLOCKING_THREADS_IDLE_TIMEOUT");
        Register(RuntimeThreads, "RUNTIME_THREADS");
        Register(RuntimeBlockingThreads, "RUNTIME_BLOCKING_THREADS");
        Register(RuntimeMode, "RUNTIME_MODE");
        Register(Loop, "LOOP");
        Register(TaskImpl, "TASK_IMPL");
        Register(Backlog, "BACKLOG");
        Register(Backpressure, "BACKPRESSURE");

        _section = "HTTP/1";
        Register(Http1BufferSize, "HTTP1_BUFFER_SIZE");
        Register(Http1HeaderReadTimeout, "HTTP1_HEADER_READ_TIMEOUT");
        Register(Http1KeepAlive, "HTTP1_KEEP_ALIVE");
        Register(Http1PipelineFlush, "HTTP1_PIPELINE_FLUSH");

        _section = "HTTP/2";
        Register(Http2AdaptiveWindow, "HTTP2_ADAPTIVE_WINDOW");
        Register(Http2InitialConnectionWindowSize, "HTTP2_INITIAL_CONNECTION_WINDOW_SIZE");
        Register(Http2InitialStreamWindowSize, "HTTP2_INITIAL_STREAM_WINDOW_SIZE");
        Register(Http2KeepAliveInterval, "HTTP2_KEEP_ALIVE_INTERVAL");
        Register(Http2KeepAliveTimeout, "HTTP2_KEEP_ALIVE_TIMEOUT");
        Register(Http2MaxConcurrentStreams, "HTTP2_MAX_CONCURRENT_STREAMS");
        Register(Http2MaxFrameSize, "HTTP2_MAX_FRAME_SIZE");
        Register(Http2MaxHeadersSize, "HTTP2_MAX_HEADERS_SIZE");
        Register(Http2MaxSendBufferSize, "HTTP2_MAX_SEND_BUFFER_SIZE");

        _section = "Limits and timeouts";
        Register(LimitRequestLine, "LIMIT_REQUEST_LINE");
        Register(LimitRequestFields, "LIMIT_REQUEST_FIELDS");
        Register(LimitRequestFieldsSize, "LIMIT_REQUEST_FIELDS_SIZE");
        Register(LimitRequestBody, "LIMIT_REQUEST_BODY");
        Register(LimitConcurrency, "LIMIT_CONCURRENCY");
        Register(TimeoutKeepAlive, "TIMEOUT_KEEP_ALIVE");
        Register(MinRequestBodyRate, "MIN_REQUEST_BODY_RATE");
        Register(MinResponseRate, "MIN_RESPONSE_RATE");

        _section = "Logging";
        Register(LogEnabled, "LOG_ENABLED");
        Register(LogLevel, "LOG_LEVEL");
        Register(LogConfig, "LOG_CONFIG");
        Register(AccessLog, "LOG_ACCESS_ENABLED");
        Register(AccessLogFormat, "LOG_ACCESS_FMT");

        _section = "TLS";
        Register(SslCertificate, "SSL_CERTIFICATE");
        Register(SslKeyfile, "SSL_KEYFILE");
        Register(SslKeyfilePassword, "SSL_KEYFILE_PASSWORD");
        Register(SslProtocolMin, "SSL_PROTOCOL_MIN");
        Register(SslCa, "SSL_CA");
        Register(SslCrl, "SSL_CRL", split: ':');
        Register(SslClientVerify, "SSL_CLIENT_VERIFY");

        _section = "Proxies";
        Register(ProxyHeaders, "PROXY_HEADERS");
        Register(ForwardedAllowIps, "FORWARDED_ALLOW_IPS", plainEnv: "FORWARDED_ALLOW_IPS");

        _section = "Worker lifecycle";
        Register(RespawnFailedWorkers, "RESPAWN_FAILED_WORKERS");
        Register(RespawnInterval, "RESPAWN_INTERVAL");
        Register(RssSampleInterval, "RSS_SAMPLE_INTERVAL");
        Register(RssSamples, "RSS_SAMPLES");
        Register(WorkersLifetime, "WORKERS_LIFETIME");
        Register(WorkersMaxRss, "WORKERS_MAX_RSS");
        Register(WorkersKillTimeout, "WORKERS_KILL_TIMEOUT");

        _section = "Static files";
        Register(StaticPathRoute, "STATIC_PATH_ROUTE", split: ' ');
        Register(StaticPathMount, "STATIC_PATH_MOUNT", split: ':');
        Register(StaticPathDirToFile, "STATIC_PATH_DIR_TO_FILE");
        Register(StaticPathExpires, "STATIC_PATH_EXPIRES");

        _section = "Metrics";
        Register(Metrics, "METRICS_ENABLED");
        Register(MetricsScrapeInterval, "METRICS_SCRAPE_INTERVAL");
        Register(MetricsAddress, "METRICS_ADDRESS");
        Register(MetricsPort, "METRICS_PORT");

        _section = "Reload";
        Register(Reload, "RELOAD");
        Register(ReloadPaths, "RELOAD_PATHS", split: ':');
        Register(ReloadIgnoreDirs, "RELOAD_IGNORE_DIRS", split: ' ');
        Register(ReloadIgnorePatterns, "RELOAD_IGNORE_PATTERNS", split: ' ');
        Register(ReloadIgnorePaths, "RELOAD_IGNORE_PATHS", split: ':');
        Register(ReloadTick, "RELOAD_TICK");
        Register(ReloadIgnoreWorkerFailure, "RELOAD_IGNORE_WORKER_FAILURE");

        _section = "Process";
        Register(ProcessName, "PROCESS_NAME");
        Register(PidFile, "PID_FILE");
    }

    private void Register(Option option, string env, char? split = null, string? plainEnv = null)
    {
        Option<bool>? negation = null;
        if (option is Option<bool> flag)
        {
            var negative = "--no-" + flag.Name[2..];
            negation = new Option<bool>(negative) { Description = $"Disable {flag.Name}", Arity = ArgumentArity.Zero };
        }
        _entries.Add(new Entry(option, env, _section, negation, split, plainEnv));
    }

    // ------------------------------------------------------------------ option kinds

    private static Option<string?> OptionalStr(string name, string help) => new(name) { Description = help, HelpName = "TEXT" };

    private static Option<string[]> Many(string name, string help) =>
        new(name) { Description = help + " (repeatable)", HelpName = "TEXT", AllowMultipleArgumentsPerToken = false, Arity = ArgumentArity.ZeroOrMore };

    private static Option<bool> Flag(string name, string help, bool @default) =>
        new(name) { Description = help, Arity = ArgumentArity.Zero, DefaultValueFactory = _ => @default };

    private static Option<int> Int(string name, string help, int @default, int? min = null, int? max = null)
    {
        var option = new Option<int>(name) { Description = help, HelpName = IntegerName(min, max), DefaultValueFactory = _ => @default };
        option.CustomParser = result => ParseInteger(result, name, min, max);
        return option;
    }

    /// <summary>An integer option that is unset (null) unless given.</summary>
    private static Option<int?> OptionalInt(string name, string help, int? min = null, int? max = null)
    {
        var option = new Option<int?>(name) { Description = help, HelpName = IntegerName(min, max) };
        option.CustomParser = result => ParseInteger(result, name, min, max);
        return option;
    }

    /// <summary>A 64-bit integer option (sizes beyond 2 GiB) that is unset (null) unless given.</summary>
    private static Option<long?> OptionalLong(string name, string help, long? min = null)
    {
        var option = new Option<long?>(name) { Description = help, HelpName = IntegerName(min, null) };
        option.CustomParser = result => ParseInteger(result, name, min, null);
        return option;
    }

    /// <summary>As click shows an integer option: <c>INTEGER RANGE</c> when bounded.</summary>
    private static string IntegerName<T>(T? min, T? max) where T : struct =>
        min is null && max is null ? "INTEGER" : $"INTEGER [{RangeText(min, max)}]";

    private static T ParseInteger<T>(ArgumentResult result, string name, T? min, T? max) where T : struct, IBinaryInteger<T>
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (!T.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            result.AddError($"Invalid value for '{name}': '{text}' is not a valid integer.");
            return T.Zero;
        }
        if ((min is { } lo && value < lo) || (max is { } hi && value > hi))
            result.AddError($"Invalid value for '{name}': {value} is not in the range {RangeText(min, max)}.");
        return value;
    }

    /// <summary>An octal integer, "660" or "0o660" (Granian's OctalIntType); unset (null) unless given.</summary>
    private static Option<int?> Octal(string name, string help)
    {
        var option = new Option<int?>(name) { Description = help, HelpName = "OCTAL" };
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            var digits = text.StartsWith("0o", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
            try
            {
                var value = Convert.ToInt32(digits, 8);
                if (digits.Length > 0 && value is >= 0 and <= 0xFFF) return value;
            }
            catch (Exception e) when (e is FormatException or ArgumentException or OverflowException) { }
            result.AddError($"Invalid value for '{name}': '{text}' is not a valid octal integer.");
            return null;
        };
        return option;
    }

    private static Option<double> Float(string name, string help, double @default)
    {
        var option = new Option<double>(name) { Description = help, HelpName = "FLOAT", DefaultValueFactory = _ => @default };
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value) || value < 0)
                result.AddError($"Invalid value for '{name}': '{text}' is not a valid float.");
            return value;
        };
        return option;
    }

    private static string RangeText<T>(T? min, T? max) where T : struct => (min, max) switch
    {
        ({ } lo, { } hi) => $"{lo}<=x<={hi}",
        ({ } lo, null) => $"x>={lo}",
        (null, { } hi) => $"x<={hi}",
        _ => "",
    };

    /// <summary>Seconds, as a number or as <c>1d2h3m4s</c> (units in that order), like Granian's Duration.</summary>
    private static Option<int?> Duration(string name, string help, int min, int? max, int? @default = null)
    {
        var option = new Option<int?>(name) { Description = help, HelpName = max is { } hi ? $"DURATION [{min}s-{hi}s]" : $"DURATION [>={min}s]", DefaultValueFactory = _ => @default };
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            var seconds = ParseDuration(text);
            if (seconds is null)
            {
                result.AddError($"Invalid value for '{name}': '{text}' is not a valid duration");
                return null;
            }
            if (seconds < min) result.AddError($"Invalid value for '{name}': '{text}' is less than the minimum allowed value of {min} seconds");
            else if (max is { } hi && seconds > hi) result.AddError($"Invalid value for '{name}': '{text}' is greater than the maximum allowed value of {hi} seconds");
            return seconds;
        };
        return option;
    }

    internal static int? ParseDuration(string text)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var plain)) return plain;
        var m = DurationPattern().Match(text);
        if (!m.Success || text.Length == 0) return null;
        long total = 0;
        int[] unit = [86_400, 3600, 60, 1];
        for (var i = 0; i < 4; i++)
        {
            if (!m.Groups[i + 1].Success) continue;
            if (!int.TryParse(m.Groups[i + 1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return null;
            total += (long)n * unit[i];
        }
        return total > int.MaxValue ? null : (int)total;
    }

    [GeneratedRegex(@"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")]
    private static partial Regex DurationPattern();

    /// <summary>A <see cref="Mica.Server.Http.TrustedProxies"/> list, checked here so that a bad item is a usage error.</summary>
    private static Option<string> Trusted(string name, string help, string @default)
    {
        var option = new Option<string>(name) { Description = help, HelpName = "TEXT", DefaultValueFactory = _ => @default };
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            if (!Mica.Server.Http.TrustedProxies.TryParse(text, out _, out var error))
                result.AddError($"Invalid value for '{name}': {error}.");
            return text;
        };
        return option;
    }

    /// <summary>An IP address or a host name (resolved when the server starts; one that does not resolve is exit 1 then).</summary>
    private static Option<string> Address(string name, string help, string @default)
    {
        var option = new Option<string>(name) { Description = help, HelpName = "ADDRESS", DefaultValueFactory = _ => @default };
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            if (!System.Net.IPAddress.TryParse(text, out _) && Uri.CheckHostName(text) != UriHostNameType.Dns)
                result.AddError($"Invalid value for '{name}': '{text}' is not an IP address or a host name.");
            return text;
        };
        return option;
    }

    /// <summary>A case-insensitive choice, normalised to lower case (Granian's EnumType).</summary>
    private static Option<string> Choice(string name, string help, string @default, params string[] choices)
    {
        var option = new Option<string>(name) { Description = help, HelpName = $"[{string.Join("|", choices)}]", DefaultValueFactory = _ => @default };
        option.CustomParser = result =>
        {
            var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
            var value = text.ToLowerInvariant();
            if (!choices.Contains(value))
                result.AddError($"Invalid value for '{name}': '{text}' is not one of {string.Join(", ", choices.Select(c => $"'{c}'"))}.");
            return value;
        };
        return option;
    }
}
