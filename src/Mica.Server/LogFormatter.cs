namespace Mica.Server;

/// <summary>
/// A Python <c>logging.Formatter</c>'s %-format and date format, applied in C# to the records Mica
/// writes without Python: its own lines (<see cref="Log"/>) and the access log. The record fields a
/// Python format may use are filled as Python's <c>LogRecord</c> would fill them for this process.
/// </summary>
internal sealed class LogFormatter
{
    private static readonly string[] Fields =
        ["asctime", "created", "filename", "funcName", "levelname", "levelno", "lineno", "message", "module", "msecs",
         "name", "pathname", "process", "processName", "relativeCreated", "thread", "threadName", "taskName"];

    private static readonly int Pid = Environment.ProcessId;
    private static readonly DateTimeOffset Started = DateTimeOffset.Now;

    /// <summary>
    /// <c>%(processName)s</c>: <c>master</c>, or <c>worker-N</c> (the worker id, which a respawned
    /// worker keeps), set once at start; a worker's Python side names its process the same.
    /// </summary>
    public static string ProcessName { get; set; } = "master";

    private readonly PercentFormat _format;
    private readonly string _dateFormat;

    /// <summary>Throws <see cref="FormatException"/> when the format uses a field no record can give.</summary>
    public LogFormatter(string format, string dateFormat)
    {
        _format = PercentFormat.Parse(format, Fields);
        _dateFormat = dateFormat;
        IsMessageOnly = format == "%(message)s";
    }

    /// <summary>Whether a line is the message itself (e.g. the access log's usual formatter).</summary>
    public bool IsMessageOnly { get; }

    public string Render(string logger, LogLevel level, string message, DateTimeOffset now)
    {
        var (name, number) = level switch
        {
            LogLevel.Debug => ("DEBUG", 10),
            LogLevel.Info => ("INFO", 20),
            LogLevel.Warning => ("WARNING", 30),
            LogLevel.Error => ("ERROR", 40),
            _ => ("CRITICAL", 50),
        };
        var thread = Thread.CurrentThread;
        return _format.Render([
            Strftime.Format(now, _dateFormat), now.ToUnixTimeMilliseconds() / 1000.0, logger, logger, name, number, 0,
            message, logger, (double)now.Millisecond, logger, "", Pid, ProcessName,
            (now - Started).TotalMilliseconds, Environment.CurrentManagedThreadId, thread.Name ?? "Thread", null]);
    }
}
