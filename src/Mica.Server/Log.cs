using System.Text;

namespace Mica.Server;

/// <summary>Off: nothing is logged (<c>--no-log</c>).</summary>
public enum LogLevel { Debug, Info, Warning, Error, Critical, Off }

/// <summary>
/// Mica's own log lines, master and worker alike, formatted like the Python side's <c>mica</c>
/// logger: by default <c>[time] [worker-1:pid] [LEVEL] message</c> (<c>master</c> in the master),
/// or as <c>--log-config</c> says (<see cref="LogConfig"/>). Each line is written with one call, so that lines from several
/// processes sharing a stream or a file do not interleave.
/// </summary>
public static class Log
{
    private static readonly Lock Gate = new();
    private static LogConfig _config = LogConfig.Default;
    private static LogFormatter _formatter = LogConfig.Default.Formatter();
    private static Stream _output = LogConfig.Default.OpenOutput();

    public static LogLevel Level { get; set; } = LogLevel.Info;

    /// <summary>
    /// Applies <c>--log-config</c> over <paramref name="level"/> (<c>--log-level</c>): the config's
    /// level for the mica logger wins, except over <c>--no-log</c>. Throws <see cref="FormatException"/>
    /// when the format uses a field Mica's lines cannot give.
    /// </summary>
    internal static void Configure(LogConfig config, LogLevel level)
    {
        var formatter = config.Formatter();
        var output = config.OpenOutput();
        lock (Gate)
        {
            _config = config;
            _formatter = formatter;
            _output = output;
            Level = level == LogLevel.Off ? LogLevel.Off : config.Level ?? level;
        }
    }

    /// <summary>SIGUSR1, after logrotate moved the log file away: later lines go to a new file of that name.</summary>
    internal static void Reopen()
    {
        string? error;
        lock (Gate) (_output, error) = _config.Reopen(_output);
        if (error is not null) Warning($"cannot reopen the log file, writing on to the old one: {error}");
    }

    public static void Debug(string message) => Write(LogLevel.Debug, message);
    public static void Info(string message) => Write(LogLevel.Info, message);
    public static void Warning(string message) => Write(LogLevel.Warning, message);
    public static void Error(string message) => Write(LogLevel.Error, message);

    public static void Write(LogLevel level, string message)
    {
        if (level < Level) return;
        var now = DateTimeOffset.Now;
        lock (Gate)
        {
            _output.Write(Encoding.UTF8.GetBytes(_formatter.Render("mica", level, message, now) + "\n"));
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
