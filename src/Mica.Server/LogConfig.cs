using System.Text.Json;

namespace Mica.Server;

/// <summary>Where log lines go.</summary>
internal enum LogOutput { Stderr, Stdout, File }

/// <summary>
/// <c>--log-config</c>: a JSON file holding a Python <c>logging.dictConfig</c>. The workers apply it
/// to Python's logging (worker.py), so the app's logs and Mica's Python-side <c>mica</c> logger
/// follow it. The lines Mica writes without Python follow what it says about their logger: Mica's
/// own lines (the master's, and the workers' C# side) the <c>mica</c> logger (or, failing that, the
/// root logger), the access log <c>mica.access</c> (or Granian's <c>granian.access</c>). From that
/// logger it takes the level, the format and date format of its first handler's formatter, and that
/// handler's destination: stderr, stdout, or a file, appended to one whole line per write.
/// </summary>
internal sealed record LogConfig(LogLevel? Level, string Format, string DateFormat, LogOutput Output, string? FilePath)
{
    public const string DefaultFormat = "[%(asctime)s] [%(processName)s:%(process)d] [%(levelname)s] %(message)s";
    public const string DefaultDateFormat = "%Y-%m-%d %H:%M:%S %z";

    /// <summary>Mica's own format, without a config file.</summary>
    public static LogConfig Default { get; } = new(null, DefaultFormat, DefaultDateFormat, LogOutput.Stderr, null);

    /// <summary>The access log without a config file, as Granian's: the line alone, on stdout.</summary>
    public static LogConfig AccessDefault { get; } = new(null, "%(message)s", DefaultDateFormat, LogOutput.Stdout, null);

    /// <summary>The access log's logger names: Mica's first, then Granian's, so Granian's configs work unchanged.</summary>
    public static readonly string[] AccessLoggers = ["mica.access", "granian.access"];

    // Console.OpenStandardError dups the descriptor: opened once, for the process's life.
    private static readonly Lazy<Stream> Stderr = new(Console.OpenStandardError);
    private static readonly Lazy<Stream> Stdout = new(Console.OpenStandardOutput);

    /// <summary>Reads what a dictConfig says about the <c>mica</c> logger; throws <see cref="FormatException"/> with a one-line reason.</summary>
    public static LogConfig Parse(string json) => Parse(json, ["mica"], useRoot: true, Default);

    /// <summary>Reads what a dictConfig says about the access log's logger (<see cref="AccessLoggers"/>).</summary>
    /// <remarks>
    /// Unlike Granian, a config that does not name the access logger leaves the access log as it
    /// is: with Granian, such a config's "loggers" replaces Granian's own and the access log falls
    /// silent, a surprise its users report.
    /// </remarks>
    public static LogConfig ParseAccess(string json) => Parse(json, AccessLoggers, useRoot: false, AccessDefault);

    /// <summary>The formatter of these lines; throws <see cref="FormatException"/> when the format uses a field Mica cannot give.</summary>
    public LogFormatter Formatter() => new(Format, DateFormat);

    /// <summary>Where these lines are written.</summary>
    public Stream OpenOutput() => Output switch
    {
        LogOutput.Stdout => Stdout.Value,
        LogOutput.File => AppendOnly(FilePath!),
        _ => Stderr.Value,
    };

    /// <summary>
    /// A file output opened again under its name, closing <paramref name="current"/>; streams stay
    /// as they are. When the file cannot be opened, <paramref name="current"/> stays, with the reason.
    /// </summary>
    public (Stream Output, string? Error) Reopen(Stream current)
    {
        if (Output != LogOutput.File) return (current, null);
        try
        {
            var reopened = AppendOnly(FilePath!);
            current.Dispose();
            return (reopened, null);
        }
        catch (IOException e) { return (current, e.Message); }
    }

    /// <summary>
    /// The log file opened with O_APPEND, as Python's FileHandler opens it: every process's writes
    /// land at the end, whole, however many processes share the file.
    /// </summary>
    private static FileStream AppendOnly(string path)
    {
        var fd = Native.Libc.open(path, Native.Libc.O_WRONLY | Native.Libc.O_CREAT | Native.Libc.O_APPEND | Native.Libc.O_CLOEXEC, 420 /* 0644 */);
        if (fd < 0) throw new IOException($"cannot open log file {path}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        return new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, bufferSize: 0);
    }

    private static LogConfig Parse(string json, string[] loggerNames, bool useRoot, LogConfig fallback)
    {
        JsonElement root;
        try { root = JsonDocument.Parse(json).RootElement; }
        catch (JsonException e) { throw new FormatException($"not valid JSON ({e.Message})"); }
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException("the JSON must be an object (a logging.dictConfig)");

        var logger = Section(root, "loggers") is { } loggers
            ? loggerNames.Select(n => loggers.TryGetProperty(n, out var l) ? l : (JsonElement?)null).FirstOrDefault(l => l is not null)
            : null;
        var rootLogger = useRoot ? Section(root, "root") : null;
        var level = LevelOf(logger) ?? LevelOf(rootLogger);
        var handlerName = FirstHandler(logger) ?? FirstHandler(rootLogger);
        if (handlerName is null) return fallback with { Level = level };

        if (Section(root, "handlers") is not { } handlers || !handlers.TryGetProperty(handlerName, out var handler) || handler.ValueKind != JsonValueKind.Object)
            throw new FormatException($"handler '{handlerName}' is not defined under \"handlers\"");
        var (output, file) = Destination(handler);
        // A handler without a formatter shows the message alone, as Python's does.
        var format = "%(message)s";
        var dateFormat = DefaultDateFormat;
        if (Text(handler, "formatter") is { } formatterName)
        {
            if (Section(root, "formatters") is not { } formatters || !formatters.TryGetProperty(formatterName, out var formatter))
                throw new FormatException($"formatter '{formatterName}' is not defined under \"formatters\"");
            if (Text(formatter, "style") is { } style && style != "%")
                throw new FormatException($"formatter '{formatterName}' uses style '{style}'; Mica's own lines need '%'");
            format = Text(formatter, "format") ?? Text(formatter, "fmt") ?? "%(message)s";
            dateFormat = Text(formatter, "datefmt") ?? "%Y-%m-%d %H:%M:%S,%f";
        }
        return new LogConfig(level, format, dateFormat, output, file);
    }

    private static JsonElement? Section(JsonElement root, string name) =>
        root.TryGetProperty(name, out var section) && section.ValueKind == JsonValueKind.Object ? section : null;

    private static string? Text(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static string? FirstHandler(JsonElement? logger) =>
        logger is { ValueKind: JsonValueKind.Object } l && l.TryGetProperty("handlers", out var handlers) &&
        handlers.ValueKind == JsonValueKind.Array && handlers.GetArrayLength() > 0 ? handlers[0].GetString() : null;

    private static LogLevel? LevelOf(JsonElement? logger)
    {
        if (logger is not { ValueKind: JsonValueKind.Object } l || !l.TryGetProperty("level", out var level)) return null;
        if (level.ValueKind == JsonValueKind.Number && level.TryGetInt32(out var number))
            return number switch { <= 10 => LogLevel.Debug, <= 20 => LogLevel.Info, <= 30 => LogLevel.Warning, <= 40 => LogLevel.Error, _ => LogLevel.Critical };
        return level.GetString()?.ToUpperInvariant() switch
        {
            "DEBUG" or "NOTSET" => LogLevel.Debug,
            "INFO" => LogLevel.Info,
            "WARNING" or "WARN" => LogLevel.Warning,
            "ERROR" => LogLevel.Error,
            "CRITICAL" or "FATAL" => LogLevel.Critical,
            var other => throw new FormatException($"unknown log level '{other}'"),
        };
    }

    /// <summary>The handler's destination: streams by their ext:// name, files by their filename.</summary>
    private static (LogOutput, string?) Destination(JsonElement handler)
    {
        if (Text(handler, "filename") is { } filename) return (LogOutput.File, Path.GetFullPath(filename));
        return Text(handler, "stream") == "ext://sys.stdout" ? (LogOutput.Stdout, null) : (LogOutput.Stderr, null);
    }
}
