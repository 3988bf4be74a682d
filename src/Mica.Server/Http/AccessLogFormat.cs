using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Mica.Server.Http;

/// <summary>What one access-log line says about a request.</summary>
internal readonly record struct AccessLogEntry(
    string Addr, DateTimeOffset Time, double DurationMs, int Status, string Path, string QueryString,
    string Method, string Scheme, string Protocol, IHeaderDictionary Headers);

/// <summary>
/// Granian's <c>--access-log-fmt</c>: a <see cref="PercentFormat"/> over its atoms (<c>addr</c>,
/// <c>time</c>, <c>dt_ms</c>, <c>status</c>, <c>path</c>, <c>query_string</c>, <c>method</c>,
/// <c>scheme</c>, <c>protocol</c>) and request headers as <c>%(header{name})s</c>, e.g. Granian's
/// default <c>[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f</c>.
/// An unknown atom is refused at start-up (Granian would fail on every request instead).
/// </summary>
internal sealed class AccessLogFormat
{
    public const string Default = "[%(time)s] %(addr)s - \"%(method)s %(path)s %(protocol)s\" %(status)d %(dt_ms).3f";

    private static readonly string[] Atoms = ["addr", "time", "dt_ms", "status", "path", "query_string", "method", "scheme", "protocol"];

    private readonly PercentFormat _format;

    private AccessLogFormat(PercentFormat format) => _format = format;

    /// <summary>Compiles <paramref name="format"/>; throws <see cref="FormatException"/> with a one-line reason.</summary>
    public static AccessLogFormat Parse(string format) => new(PercentFormat.Parse(format, Atoms, headers: true));

    public string Render(in AccessLogEntry entry) =>
        _format.Render([entry.Addr, TimeText(entry.Time), entry.DurationMs, entry.Status, entry.Path, entry.QueryString,
            entry.Method, entry.Scheme, entry.Protocol], entry.Headers);

    // The time as text changes once a second: made once per second (per thread), not per request.
    [ThreadStatic] private static (long Second, string Text) _lastTime;

    private static string TimeText(DateTimeOffset time)
    {
        var second = time.ToUnixTimeSeconds();
        if (_lastTime.Text is not null && _lastTime.Second == second) return _lastTime.Text;
        var text = time.ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture).Remove(23, 1);   // Python's %z: +0000
        _lastTime = (second, text);
        return text;
    }
}
