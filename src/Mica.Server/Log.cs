namespace Mica.Server;

/// <summary>Off: nothing is logged (<c>--no-log</c>).</summary>
public enum LogLevel { Debug, Info, Warning, Error, Critical, Off }

/// <summary>
/// Mica's own log lines, master and worker alike, in the same format as the Python side's
/// <c>mica</c> logger: <c>[time] [pid] [LEVEL] message</c>. Each line is written with one call so
/// that lines from several processes sharing stderr do not interleave.
/// </summary>
public static class Log
{
    public static LogLevel Level { get; set; } = LogLevel.Info;

    private static readonly int Pid = Environment.ProcessId;

    public static void Debug(string message) => Write(LogLevel.Debug, message);
    public static void Info(string message) => Write(LogLevel.Info, message);
    public static void Warning(string message) => Write(LogLevel.Warning, message);
    public static void Error(string message) => Write(LogLevel.Error, message);

    public static void Write(LogLevel level, string message)
    {
        if (level < Level) return;
        var name = level switch
        {
            LogLevel.Debug => "DEBUG",
            LogLevel.Info => "INFO",
            LogLevel.Warning => "WARNING",
            LogLevel.Error => "ERROR",
            _ => "CRITICAL",
        };
        var line = $"[{DateTimeOffset.Now:yyyy-MM-dd HH:mm:ss zzz}] [{Pid}] [{name}] {message}\n";
        Console.Error.Write(line.Replace("+00:00", "+0000"));
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
