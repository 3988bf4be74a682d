using System.CommandLine;
using System.Reflection;
using Mica.Server.Hosting;

namespace Mica.Cli;

/// <summary>
/// <c>mica [OPTIONS] APP</c>: maps the command line and the environment onto <see cref="ServerOptions"/>.
/// A usage error is one line on stderr and exit code 2, as Granian (click) does.
/// </summary>
internal static class MicaCommand
{
    public const int UsageError = 2;

    public static string Version =>
        typeof(MicaCommand).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0";

    /// <summary>Parses; on success returns the options, otherwise the exit code to end with.</summary>
    /// <param name="environment">Reads an environment variable (the process's, unless a test gives its own).</param>
    public static (ServerOptions? Options, int ExitCode) Parse(string[] args, Func<string, string?>? environment = null)
    {
        var table = new OptionTable();
        var app = new Argument<string>("APP") { Description = "Application target to serve, as module:attribute (attribute defaults to 'app')" };
        var version = new Option<bool>("--version") { Description = "Show the version and exit", Arity = ArgumentArity.Zero };
        var root = new RootCommand("Mica: a fast HTTP server for Python web apps (ASGI, RSGI, WSGI), a drop-in replacement for Granian.") { app, version };
        foreach (var option in root.Options.Where(o => o is VersionOption).ToList()) root.Options.Remove(option);
        foreach (var entry in table.Entries)
        {
            root.Options.Add(entry.Option);
            if (entry.Negation is not null) root.Options.Add(entry.Negation);
        }

        // System.CommandLine would take an unknown option for APP and then complain about APP.
        var known = root.Options.SelectMany(o => o.Aliases.Prepend(o.Name)).ToHashSet();
        if (args.FirstOrDefault(a => a.StartsWith("--", StringComparison.Ordinal) && a != "--" && !known.Contains(a.Split('=')[0])) is { } unknown)
            return Fail($"No such option '{unknown.Split('=')[0]}'.");

        var (fromEnvironment, environmentError) = EnvironmentArguments(table, args, environment ?? Environment.GetEnvironmentVariable);
        if (environmentError is not null) return Fail(environmentError);
        string[] all = [.. args, .. fromEnvironment];
        var result = root.Parse(all);
        if (result.GetResult(version) is { Implicit: false })
        {
            Console.Out.WriteLine($"mica {Version}");
            return (null, 0);
        }
        if (result.Action is System.CommandLine.Help.HelpAction)
        {
            Console.Out.Write(HelpText.Render(table, root.Description!, app.Description!));
            return (null, 0);
        }
        if (result.Errors.Count > 0)
            return Fail(result.Errors[0].Message.StartsWith("Required argument 'APP' missing", StringComparison.Ordinal)
                ? "Missing argument 'APP'."
                : result.Errors[0].Message);


        var http = result.GetValue(table.Http)!;
        var certificate = result.GetValue(table.SslCertificate);
        var keyfile = result.GetValue(table.SslKeyfile);
        if ((certificate is null) != (keyfile is null))
            return Fail("Options '--ssl-certificate' and '--ssl-keyfile' go together.");
        var clientCa = result.GetValue(table.SslCa);
        var clientVerify = FlagValue(all, table, table.SslClientVerify);
        if (clientVerify && clientCa is null) return Fail("Option '--ssl-client-verify' needs '--ssl-ca'.");
        if (clientCa is not null && certificate is null) return Fail("Option '--ssl-ca' needs '--ssl-certificate' and '--ssl-keyfile'.");
        var loop = result.GetValue(table.Loop)!;
        if (loop is "rloop" or "winloop") return Fail($"Invalid value for '--loop': '{loop}' is not available in Mica (use auto, asyncio or uvloop).");

        if (result.GetValue(table.UrlPathPrefix) is { Length: > 0 } prefix && !prefix.StartsWith('/'))
            return Fail($"Invalid value for '--url-path-prefix': '{prefix}' must start with '/'.");
        if (result.GetValue(table.Python) is { } python && python.Contains('/') && !File.Exists(python))
            return Fail($"Invalid value for '--python': File '{python}' does not exist.");

        var workingDir = result.GetValue(table.WorkingDir);
        if (workingDir is not null && !Directory.Exists(workingDir))
            return Fail($"Invalid value for '--working-dir': Directory '{workingDir}' does not exist.");

        var reloadPaths = result.GetValue(table.ReloadPaths) ?? [];
        if (reloadPaths.FirstOrDefault(p => !Path.Exists(p)) is { } missingPath)
            return Fail($"Invalid value for '--reload-paths': Path '{missingPath}' does not exist.");
        var ignorePatterns = result.GetValue(table.ReloadIgnorePatterns) ?? [];
        foreach (var pattern in ignorePatterns)
        {
            try { _ = new System.Text.RegularExpressions.Regex(pattern); }
            catch (ArgumentException e) { return Fail($"Invalid value for '--reload-ignore-patterns': '{pattern}' is not a valid regular expression ({e.Message})."); }
        }

        var iface = result.GetValue(table.Interface)!;
        var blockingThreads = result.GetValue(table.BlockingThreads);
        if (blockingThreads > 1 && iface is "asgi" or "asginl" or "rsgi")
            return Fail($"Invalid value for '--blocking-threads': {blockingThreads}; the {iface} interface runs the app on one Python thread, so only wsgi takes more than 1.");
        var workers = result.GetValue(table.Workers);
        var envFiles = result.GetValue(table.EnvFiles) ?? [];
        if (envFiles.FirstOrDefault(f => !File.Exists(f)) is { } missingEnvFile)
            return Fail($"Invalid value for '--env-files': File '{missingEnvFile}' does not exist.");
        var staticMounts = result.GetValue(table.StaticPathMount) ?? [];
        var staticRoutes = result.GetValue(table.StaticPathRoute) ?? [];
        if (staticMounts.FirstOrDefault(m => !Directory.Exists(m)) is { } missingMount)
            return Fail($"Invalid value for '--static-path-mount': Directory '{missingMount}' does not exist.");
        if (staticRoutes.Length == 0 && staticMounts.Length == 1) staticRoutes = ["/static"];
        if (staticMounts.Length > 0 && staticRoutes.Length != staticMounts.Length)
            return Fail("Options '--static-path-route' and '--static-path-mount' must be given the same number of times.");
        if (staticRoutes.FirstOrDefault(r => !r.StartsWith('/')) is { } badRoute)
            return Fail($"Invalid value for '--static-path-route': '{badRoute}' must start with '/'.");
        var backlog = result.GetValue(table.Backlog);
        string? logConfig = null;
        if (result.GetValue(table.LogConfig) is { } logConfigPath)
        {
            if (!File.Exists(logConfigPath)) return Fail($"Invalid value for '--log-config': File '{logConfigPath}' does not exist.");
            logConfig = File.ReadAllText(logConfigPath);
            try
            {
                Mica.Server.LogConfig.Parse(logConfig).Formatter();
                Mica.Server.LogConfig.ParseAccess(logConfig).Formatter();
            }
            catch (FormatException e) { return Fail($"Invalid value for '--log-config': {logConfigPath}: {e.Message}."); }
        }
        var accessLogFormat = result.GetValue(table.AccessLogFormat) ?? Mica.Server.Http.AccessLogFormat.Default;
        try { Mica.Server.Http.AccessLogFormat.Parse(accessLogFormat); }
        catch (FormatException e) { return Fail($"Invalid value for '--access-log-fmt': {e.Message}."); }

        var options = new ServerOptions
        {
            Target = result.GetValue(app)!,
            Host = result.GetValue(table.Host)!,
            Uds = result.GetValue(table.Uds),
            UdsPermissions = result.GetValue(table.UdsPermissions),
            Port = result.GetValue(table.Port),
            Interface = iface,
            Loop = loop,
            TaskImpl = result.GetValue(table.TaskImpl)!,
            Backlog = backlog,
            Backpressure = result.GetValue(table.Backpressure) ?? Math.Max(1, backlog / workers),
            BlockingThreads = blockingThreads,
            WebSockets = FlagValue(all, table, table.WebSockets),
            Http = http,
            EnvFiles = envFiles.Select(Path.GetFullPath).ToArray(),
            AccessLogFormat = FlagValue(all, table, table.AccessLog) ? accessLogFormat : null,
            LogConfig = logConfig,
            StaticMounts = staticMounts.Select((mount, i) => new Mica.Server.Http.StaticMount(staticRoutes[i], Path.GetFullPath(mount))).ToArray(),
            StaticDirToFile = result.GetValue(table.StaticPathDirToFile),
            StaticExpiresSeconds = result.GetValue(table.StaticPathExpires) ?? 86_400,
            Http2 = new Http2Settings
            {
                MaxConcurrentStreams = result.GetValue(table.Http2MaxConcurrentStreams),
                InitialConnectionWindowSize = result.GetValue(table.Http2InitialConnectionWindowSize),
                InitialStreamWindowSize = result.GetValue(table.Http2InitialStreamWindowSize),
                MaxFrameSize = result.GetValue(table.Http2MaxFrameSize),
                MaxHeadersSize = result.GetValue(table.Http2MaxHeadersSize),
                KeepAliveIntervalMs = result.GetValue(table.Http2KeepAliveInterval),
                KeepAliveTimeoutSeconds = result.GetValue(table.Http2KeepAliveTimeout) ?? 20,
            },
            Limits = new Limits
            {
                RequestLine = result.GetValue(table.LimitRequestLine),
                RequestFields = result.GetValue(table.LimitRequestFields),
                RequestFieldsSize = result.GetValue(table.LimitRequestFieldsSize),
                RequestBody = result.GetValue(table.LimitRequestBody),
                Connections = result.GetValue(table.LimitConcurrency),
                KeepAliveTimeoutSeconds = result.GetValue(table.TimeoutKeepAlive) ?? 30,
                MinRequestBodyRate = result.GetValue(table.MinRequestBodyRate),
                MinResponseRate = result.GetValue(table.MinResponseRate),
            },
            Tls = certificate is null ? null : new TlsConfig
            {
                Certificate = Path.GetFullPath(certificate),
                Key = Path.GetFullPath(keyfile!),
                KeyPassword = result.GetValue(table.SslKeyfilePassword),
                ProtocolMin = result.GetValue(table.SslProtocolMin)!,
                ClientCa = clientCa is null ? null : Path.GetFullPath(clientCa),
                ClientCrls = (result.GetValue(table.SslCrl) ?? []).Select(Path.GetFullPath).ToArray(),
                ClientVerify = clientVerify,
            },
            BlockingThreadsIdleTimeoutSeconds = result.GetValue(table.BlockingThreadsIdleTimeout) ?? 30,
            HeaderReadTimeoutMs = result.GetValue(table.Http1HeaderReadTimeout),
            Http1BufferSize = result.GetValue(table.Http1BufferSize),
            RuntimeThreads = result.GetValue(table.RuntimeMode) == "st" ? 1 : result.GetValue(table.RuntimeThreads),
            RuntimeBlockingThreads = result.GetValue(table.RuntimeBlockingThreads),
            KeepAlive = FlagValue(all, table, table.Http1KeepAlive),
            UrlPathPrefix = (result.GetValue(table.UrlPathPrefix) ?? "").TrimEnd('/'),
            Factory = FlagValue(all, table, table.Factory),
            WorkingDir = Path.GetFullPath(workingDir ?? Directory.GetCurrentDirectory()),
            // --no-log silences master, workers and the app's "mica" logger alike (Granian's log_enabled).
            LogLevel = FlagValue(all, table, table.LogEnabled) ? result.GetValue(table.LogLevel)! : "off",
            WorkersKillTimeoutSeconds = result.GetValue(table.WorkersKillTimeout),
            Python = result.GetValue(table.Python),
            Workers = workers,
            RespawnFailedWorkers = FlagValue(all, table, table.RespawnFailedWorkers),
            RespawnIntervalSeconds = result.GetValue(table.RespawnInterval),
            WorkersLifetimeSeconds = result.GetValue(table.WorkersLifetime),
            WorkersMaxRssMiB = result.GetValue(table.WorkersMaxRss),
            RssSampleIntervalSeconds = result.GetValue(table.RssSampleInterval) ?? 30,
            RssSamples = result.GetValue(table.RssSamples),
            ProcessName = result.GetValue(table.ProcessName),
            PidFile = result.GetValue(table.PidFile),
            Reload = FlagValue(all, table, table.Reload),
            ReloadPaths = reloadPaths.Length > 0 ? reloadPaths : [workingDir ?? Directory.GetCurrentDirectory()],
            ReloadIgnoreDirs = result.GetValue(table.ReloadIgnoreDirs) ?? [],
            ReloadIgnorePatterns = ignorePatterns,
            ReloadIgnorePaths = result.GetValue(table.ReloadIgnorePaths) ?? [],
            ReloadTickMs = result.GetValue(table.ReloadTick),
            ReloadIgnoreWorkerFailure = FlagValue(all, table, table.ReloadIgnoreWorkerFailure),
            ProxyHeaders = FlagValue(all, table, table.ProxyHeaders),
            ForwardedAllowIps = result.GetValue(table.ForwardedAllowIps)!,
            Metrics = FlagValue(all, table, table.Metrics),
            MetricsAddress = result.GetValue(table.MetricsAddress)!,
            MetricsPort = result.GetValue(table.MetricsPort),
            MetricsScrapeIntervalSeconds = result.GetValue(table.MetricsScrapeInterval) ?? 15,
        };
        return (options, 0);
    }

    private static (ServerOptions?, int) Fail(string message)
    {
        Console.Error.WriteLine($"mica: error: {message} (see mica --help)");
        return (null, UsageError);
    }

    /// <summary>For a --x/--no-x pair: the last one given wins; neither given means the default.</summary>
    private static bool FlagValue(string[] args, OptionTable table, Option<bool> flag)
    {
        var negation = table.Entries.First(e => e.Option == flag).Negation!;
        var positive = Array.LastIndexOf(args, flag.Name);
        var negative = Array.LastIndexOf(args, negation.Name);
        return positive == negative ? (bool)flag.GetDefaultValue()! : positive > negative;
    }

    /// <summary>
    /// Options not on the command line but set in the environment (MICA_X, else GRANIAN_X, else uvicorn's
    /// name for the few options that have one), turned into
    /// arguments so that they are parsed and validated exactly like the command line (an empty
    /// variable counts as unset, booleans accept click's words, repeatable options split on ':' for
    /// paths and on whitespace otherwise).
    /// </summary>
    internal static (List<string> Args, string? Error) EnvironmentArguments(OptionTable table, string[] args, Func<string, string?> environment)
    {
        var added = new List<string>();
        foreach (var entry in table.Entries)
        {
            var name = entry.Option.Name;
            var negative = entry.Negation?.Name;
            if (args.Any(a => a == name || a.StartsWith(name + "=", StringComparison.Ordinal) || a == negative)) continue;
            var variable = "MICA_" + entry.EnvName;
            var value = environment(variable);
            if (string.IsNullOrEmpty(value))
            {
                variable = "GRANIAN_" + entry.EnvName;
                value = environment(variable);
            }
            if (string.IsNullOrEmpty(value) && entry.PlainEnv is not null)
            {
                variable = entry.PlainEnv;
                value = environment(variable);
            }
            if (string.IsNullOrEmpty(value)) continue;

            if (entry.Negation is not null)
            {
                var flag = ParseBool(value);
                if (flag is null)
                    return (added, $"Invalid value for '{name}' (from {variable}): '{value}' is not a valid boolean. Recognized values: 0, 1, f, false, n, no, off, on, t, true, y, yes");
                added.Add(flag.Value ? name : negative!);
            }
            else if (entry.EnvSplit is { } separator)
            {
                var items = separator == ' ' ? value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries) : value.Split(separator);
                foreach (var item in items) added.AddRange([name, item]);
            }
            else added.AddRange([name, value]);
        }
        return (added, null);
    }

    internal static bool? ParseBool(string value) => value.Trim().ToLowerInvariant() switch
    {
        "1" or "true" or "t" or "yes" or "y" or "on" => true,
        "0" or "false" or "f" or "no" or "n" or "off" => false,
        _ => null,
    };
}
