using System.Globalization;
using System.Text;

namespace Mica.Server.Http;

/// <summary>What one access-log line says about a request.</summary>
internal readonly record struct AccessLogEntry(
    string Addr, DateTimeOffset Time, double DurationMs, int Status, string Path, string QueryString,
    string Method, string Scheme, string Protocol, Microsoft.AspNetCore.Http.IHeaderDictionary Headers);

/// <summary>
/// Granian's <c>--access-log-fmt</c>: a Python %-format over named atoms (<c>addr</c>, <c>time</c>,
/// <c>dt_ms</c>, <c>status</c>, <c>path</c>, <c>query_string</c>, <c>method</c>, <c>scheme</c>,
/// <c>protocol</c>) and request headers as <c>%(header{name})s</c>, e.g. Granian's default
/// <c>[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f</c>.
/// Compiled once; an unknown atom or a malformed spec is refused at start-up (Granian would fail
/// on every request instead). Conversions: s, r, d, i, u, f, F, e, E, g, G, x, X, o, with Python's
/// flags (<c>-</c>, <c>0</c>, <c>+</c>, space), width and precision.
/// </summary>
internal sealed class AccessLogFormat
{
    public const string Default = "[%(time)s] %(addr)s - \"%(method)s %(path)s %(protocol)s\" %(status)d %(dt_ms).3f";

    private static readonly string[] Atoms = ["addr", "time", "dt_ms", "status", "path", "query_string", "method", "scheme", "protocol"];

    /// <summary>A literal run of text (Atom null), or one %-conversion of an atom or header.</summary>
    private sealed record Part(string? Literal, string? Atom, string? Header, string Flags, int Width, int Precision, char Conversion);

    private readonly Part[] _parts;

    private AccessLogFormat(Part[] parts) => _parts = parts;

    /// <summary>Compiles <paramref name="format"/>; throws <see cref="FormatException"/> with a one-line reason.</summary>
    public static AccessLogFormat Parse(string format)
    {
        var parts = new List<Part>();
        var literal = new StringBuilder();
        var i = 0;
        while (i < format.Length)
        {
            var c = format[i];
            if (c != '%')
            {
                literal.Append(c);
                i++;
                continue;
            }
            if (i + 1 < format.Length && format[i + 1] == '%')
            {
                literal.Append('%');
                i += 2;
                continue;
            }
            if (i + 1 >= format.Length || format[i + 1] != '(')
                throw new FormatException($"'%' at position {i} must be followed by '(atom)' or '%'");
            var close = format.IndexOf(')', i + 2);
            if (close < 0) throw new FormatException($"unclosed '%(' at position {i}");
            var name = format[(i + 2)..close];
            string? atom = null, header = null;
            if (name.StartsWith("header{", StringComparison.Ordinal) && name.EndsWith('}'))
                header = name[7..^1].Trim().ToLowerInvariant();
            else if (Array.IndexOf(Atoms, name) >= 0)
                atom = name;
            else
                throw new FormatException($"unknown atom '{name}' (known: {string.Join(", ", Atoms)}, header{{name}})");
            i = close + 1;
            var flagsStart = i;
            while (i < format.Length && "-+ 0#".Contains(format[i])) i++;
            var flags = format[flagsStart..i];
            var width = ReadNumber(format, ref i);
            var precision = -1;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                precision = Math.Max(0, ReadNumber(format, ref i));
            }
            if (i >= format.Length || !"srdiufFeEgGxXo".Contains(format[i]))
                throw new FormatException($"bad conversion for '%({name})' at position {i}");
            if (literal.Length > 0)
            {
                parts.Add(new Part(literal.ToString(), null, null, "", -1, -1, 's'));
                literal.Clear();
            }
            parts.Add(new Part(null, atom, header, flags, width, precision, format[i]));
            i++;
        }
        if (literal.Length > 0) parts.Add(new Part(literal.ToString(), null, null, "", -1, -1, 's'));
        return new AccessLogFormat([.. parts]);
    }

    private static int ReadNumber(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        return i == start ? -1 : int.Parse(s.AsSpan(start, i - start), CultureInfo.InvariantCulture);
    }

    public string Render(in AccessLogEntry entry)
    {
        var line = new StringBuilder(128);
        foreach (var part in _parts)
        {
            if (part.Literal is not null)
            {
                line.Append(part.Literal);
                continue;
            }
            object value = part.Header is not null
                ? (entry.Headers.TryGetValue(part.Header, out var values) && values.Count > 0 ? values.ToString() : "-")
                : part.Atom switch
                {
                    "addr" => entry.Addr,
                    "time" => TimeText(entry.Time),
                    "dt_ms" => entry.DurationMs,
                    "status" => entry.Status,
                    "path" => entry.Path,
                    "query_string" => entry.QueryString,
                    "method" => entry.Method,
                    "scheme" => entry.Scheme,
                    _ => entry.Protocol,
                };
            Append(line, part, value);
        }
        return line.ToString();
    }

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

    /// <summary>One conversion, as Python's % operator does it.</summary>
    private static void Append(StringBuilder line, Part part, object value)
    {
        var flags = part.Flags;
        string text;
        switch (part.Conversion)
        {
            case 's':
                text = Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
                if (part.Precision >= 0 && text.Length > part.Precision) text = text[..part.Precision];
                break;
            case 'r':
                text = value is string s ? $"'{s.Replace("\\", "\\\\").Replace("'", "\\'")}'" : Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
                break;
            default:
                if (value is string) throw new FormatException($"%{part.Conversion} needs a number, and '{part.Atom ?? part.Header}' is text");
                text = Number(Convert.ToDouble(value, CultureInfo.InvariantCulture), part.Conversion, part.Precision, flags);
                break;
        }
        var pad = part.Width - text.Length;
        if (pad <= 0) line.Append(text);
        else if (flags.Contains('-')) line.Append(text).Append(' ', pad);
        else if (flags.Contains('0') && part.Conversion is not ('s' or 'r'))
        {
            var sign = text.Length > 0 && text[0] is '-' or '+' or ' ' ? 1 : 0;
            line.Append(text, 0, sign).Append('0', pad).Append(text, sign, text.Length - sign);
        }
        else line.Append(' ', pad).Append(text);
    }

    private static string Number(double number, char conversion, int precision, string flags)
    {
        var body = conversion switch
        {
            'd' or 'i' or 'u' => Math.Truncate(Math.Abs(number)).ToString("0", CultureInfo.InvariantCulture),
            'x' => ((long)Math.Truncate(Math.Abs(number))).ToString("x", CultureInfo.InvariantCulture),
            'X' => ((long)Math.Truncate(Math.Abs(number))).ToString("X", CultureInfo.InvariantCulture),
            'o' => Convert.ToString((long)Math.Truncate(Math.Abs(number)), 8),
            'f' or 'F' => Math.Abs(number).ToString("F" + (precision < 0 ? 6 : precision), CultureInfo.InvariantCulture),
            'e' or 'E' => Exponent(Math.Abs(number), precision < 0 ? 6 : precision, conversion),
            _ => Math.Abs(number).ToString("G" + (precision < 0 ? 6 : Math.Max(1, precision)), CultureInfo.InvariantCulture),
        };
        var negative = number < 0 && body.Any(ch => ch is >= '1' and <= '9');
        var sign = negative ? "-" : flags.Contains('+') ? "+" : flags.Contains(' ') ? " " : "";
        return sign + body;
    }

    /// <summary>Python's exponent form: at least two exponent digits (1.500000e+03).</summary>
    private static string Exponent(double number, int precision, char conversion)
    {
        var s = number.ToString((conversion == 'E' ? "E" : "e") + precision, CultureInfo.InvariantCulture);
        var e = s.IndexOfAny(['e', 'E']);
        var exponent = int.Parse(s.AsSpan(e + 1), CultureInfo.InvariantCulture);
        return $"{s[..e]}{s[e]}{(exponent < 0 ? '-' : '+')}{Math.Abs(exponent):00}";
    }
}
