using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Mica.Server;

/// <summary>
/// Python's %-formatting over named fields (<c>%(name)-8s</c>, <c>%(dt_ms).3f</c>, <c>%%</c>), as
/// logging formats and Granian's access-log format use it: compiled once against the fields the
/// caller can give, so an unknown field or a malformed spec is refused up front instead of failing
/// each line. Conversions: s, r, d, i, u, f, F, e, E, g, G, x, X, o, with Python's flags
/// (<c>-</c>, <c>0</c>, <c>+</c>, space), width and precision. Optionally, request headers as
/// <c>%(header{name})s</c> (Granian's access-log extension).
/// </summary>
internal sealed class PercentFormat
{
    /// <summary>A literal run of text (Field -1 and no Header), or one %-conversion of a field or header.</summary>
    private sealed record Part(string? Literal, int Field, string? Header, string Flags, int Width, int Precision, char Conversion);

    private readonly Part[] _parts;
    private readonly IReadOnlyList<string> _fields;

    private PercentFormat(Part[] parts, IReadOnlyList<string> fields)
    {
        _parts = parts;
        _fields = fields;
    }

    /// <summary>Whether the format shows <paramref name="field"/> (e.g. to skip computing it).</summary>
    public bool Uses(string field)
    {
        var index = IndexOf(_fields, field);
        return Array.Exists(_parts, p => p.Field == index && index >= 0);
    }

    private static int IndexOf(IReadOnlyList<string> fields, string name)
    {
        for (var i = 0; i < fields.Count; i++)
            if (fields[i] == name) return i;
        return -1;
    }

    /// <summary>Compiles <paramref name="format"/>; throws <see cref="FormatException"/> with a one-line reason.</summary>
    public static PercentFormat Parse(string format, IReadOnlyList<string> fields, bool headers = false)
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
                throw new FormatException($"'%' at position {i} must be followed by '(name)' or '%'");
            var close = format.IndexOf(')', i + 2);
            if (close < 0) throw new FormatException($"unclosed '%(' at position {i}");
            var name = format[(i + 2)..close];
            string? header = null;
            var field = IndexOf(fields, name);
            if (headers && name.StartsWith("header{", StringComparison.Ordinal) && name.EndsWith('}'))
                header = name[7..^1].Trim().ToLowerInvariant();
            else if (field < 0)
                throw new FormatException($"unknown atom '{name}' (known: {string.Join(", ", fields)}{(headers ? ", header{name}" : "")})");
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
                parts.Add(new Part(literal.ToString(), -1, null, "", -1, -1, 's'));
                literal.Clear();
            }
            parts.Add(new Part(null, field, header, flags, width, precision, format[i]));
            i++;
        }
        if (literal.Length > 0) parts.Add(new Part(literal.ToString(), -1, null, "", -1, -1, 's'));
        return new PercentFormat([.. parts], fields);
    }

    private static int ReadNumber(string s, ref int i)
    {
        var start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        return i == start ? -1 : int.Parse(s.AsSpan(start, i - start), CultureInfo.InvariantCulture);
    }

    /// <param name="values">One per field, in the order the fields were given to <see cref="Parse"/>.</param>
    /// <param name="headers">For <c>%(header{name})s</c>: a missing header shows as "-".</param>
    public string Render(ReadOnlySpan<object?> values, IHeaderDictionary? headers = null)
    {
        var line = new StringBuilder(128);
        foreach (var part in _parts)
        {
            if (part.Literal is not null)
            {
                line.Append(part.Literal);
                continue;
            }
            var value = part.Header is not null
                ? (headers is not null && headers.TryGetValue(part.Header, out var found) && found.Count > 0 ? found.ToString() : "-")
                : values[part.Field] ?? "-";
            Append(line, part, value);
        }
        return line.ToString();
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
                if (value is string) throw new FormatException($"%{part.Conversion} needs a number, and '{part.Header ?? "field"}' is text");
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
