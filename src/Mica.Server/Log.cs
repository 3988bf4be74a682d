using System.Text;

namespace Mica.Server;

/// <summary>Off: nothing is logged (<c>--no-log</c>).</summary>
public enum LogLevel { Debug, Info, Warning, Error, Critical, Off }

/// <summary>
/// Mica's own log lines, master and worker alike, formatted like the Python side's <c>mica</c>
/// logger: by default <c>[time] [pid] [LEVEL] message</c>, or as <c>--log-config</c> says
/// (<see cref="LogConfig"/>). Each line is written with one call, so that lines from several
/// processes sharing a stream or a file do not interleave.
/// </summary>
public static class Log
{
    /// <summary>The fields a Python logging format may use that Mica's own lines can give.</summary>
    private static readonly string[] Fields =
        ["asctime", "created", "filename", "funcName", "levelname", "levelno", "lineno", "message", "module", "msecs",
         "name", "pathname", "process", "processName", "relativeCreated", "thread", "threadName", "taskName"];

    private static readonly int Pid = Environment.ProcessId;
    private static readonly DateTimeOffset Started = DateTimeOffset.Now;
    private static readonly Lock Gate = new();
    private static PercentFormat _format = PercentFormat.Parse(LogConfig.DefaultFormat, Fields);
    private static string _dateFormat = LogConfig.DefaultDateFormat;
    // Console.OpenStandardError dups the descriptor: opened once, for the process's life.
    private static readonly Stream Stderr = Console.OpenStandardError();
    private static Stream _output = Stderr;

    public static LogLevel Level { get; set; } = LogLevel.Info;

    /// <summary>
    /// Applies <c>--log-config</c> over <paramref name="level"/> (<c>--log-level</c>): the config's
    /// level for the mica logger wins, except over <c>--no-log</c>. Throws <see cref="FormatException"/>
    /// when the format uses a field Mica's lines cannot give.
    /// </summary>
    internal static void Configure(LogConfig config, LogLevel level)
    {
        var format = PercentFormat.Parse(config.Format, Fields);
        lock (Gate)
        {
            _format = format;
            _dateFormat = config.DateFormat;
            _output = config.Output switch
            {
                LogOutput.Stdout => Console.OpenStandardOutput(),
                LogOutput.File => AppendOnly(config.FilePath!),
                _ => Stderr,
            };
            Level = level == LogLevel.Off ? LogLevel.Off : config.Level ?? level;
        }
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

    /// <summary>Whether a format can be used for Mica's own lines; the reason when it cannot.</summary>
    internal static string? Check(LogConfig config)
    {
        try
        {
            PercentFormat.Parse(config.Format, Fields);
            return null;
        }
        catch (FormatException e) { return e.Message; }
    }

    public static void Debug(string message) => Write(LogLevel.Debug, message);
    public static void Info(string message) => Write(LogLevel.Info, message);
    public static void Warning(string message) => Write(LogLevel.Warning, message);
    public static void Error(string message) => Write(LogLevel.Error, message);

    public static void Write(LogLevel level, string message)
    {
        if (level < Level) return;
        var (name, number) = level switch
        {
            LogLevel.Debug => ("DEBUG", 10),
            LogLevel.Info => ("INFO", 20),
            LogLevel.Warning => ("WARNING", 30),
            LogLevel.Error => ("ERROR", 40),
            _ => ("CRITICAL", 50),
        };
        var now = DateTimeOffset.Now;
        var thread = Thread.CurrentThread;
        lock (Gate)
        {
            var line = _format.Render([
                Strftime.Format(now, _dateFormat), now.ToUnixTimeMilliseconds() / 1000.0, "mica", "mica", name, number, 0,
                message, "mica", (double)now.Millisecond, "mica", "", Pid, "MainProcess",
                (now - Started).TotalMilliseconds, Environment.CurrentManagedThreadId, thread.Name ?? "Thread", null]);
            _output.Write(Encoding.UTF8.GetBytes(line + "\n"));
            _output.Flush();
        }
    }

    /// <summary>Parses Granian's level names (<c>warn</c> and <c>notset</c> included), and <c>off</c> for <c>--no-log</c>.</summary>
    public static LogLevel Parse(string name) => name.ToLowerInvariant() switch
    {
        "debug" or "notset" => LogLevel.Debug,
        "info" => LogLevel.Info,
        "warning" or "warn" => LogLevel.Warning,
        "error" => LogLevel.Error,
        "off" => LogLevel.Off,
        _ => LogLevel.Critical,
    };
}
