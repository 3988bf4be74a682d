using System.Text;
using System.Text.RegularExpressions;

namespace Mica;

/// <summary>
/// <c>--env-files</c>: dotenv files whose variables every worker gets in its environment before the
/// app is imported. The syntax is python-dotenv's (what Granian uses): <c>KEY=value</c>, an optional
/// <c>export</c>, comments, single quotes (literal) and double quotes (escapes), both spanning lines,
/// and <c>${VAR}</c> / <c>${VAR:-default}</c> in unquoted and double-quoted values. As in Granian, a
/// variable already in the server's environment wins over the files, and a later file over an
/// earlier one.
/// </summary>
internal static partial class EnvFiles
{
    /// <exception cref="StartupError">naming the file and line of a syntax error, or an unreadable file.</exception>
    public static IReadOnlyDictionary<string, string> Load(IReadOnlyList<string> paths)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in paths)
        {
            string text;
            try { text = File.ReadAllText(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new StartupError($"cannot read --env-files '{path}': {e.Message}");
            }
            try
            {
                foreach (var (key, value) in Parse(text, name => Environment.GetEnvironmentVariable(name) ?? values.GetValueOrDefault(name)))
                    if (Environment.GetEnvironmentVariable(key) is null) values[key] = value;
            }
            catch (FormatException e)
            {
                throw new StartupError($"invalid --env-files '{path}': {e.Message}");
            }
        }
        return values;
    }

    /// <summary>The assignments of a dotenv text, in order. A bare <c>KEY</c> (no <c>=</c>) assigns nothing.</summary>
    /// <param name="lookup">Resolves <c>${VAR}</c>; variables assigned earlier in the text come first.</param>
    /// <exception cref="FormatException">"line N: why".</exception>
    public static List<(string Key, string Value)> Parse(string text, Func<string, string?> lookup)
    {
        var result = new List<(string Key, string Value)>();
        var local = new Dictionary<string, string>(StringComparer.Ordinal);
        string? Known(string name) => local.TryGetValue(name, out var value) ? value : lookup(name);
        var lines = text.Replace("\r\n", "\n").Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var lineNumber = i + 1;
            var line = lines[i].TrimStart();
            if (line.Length == 0 || line[0] == '#') continue;
            if (line.StartsWith("export ", StringComparison.Ordinal)) line = line[7..].TrimStart();
            var m = Assignment().Match(line);
            if (!m.Success)
            {
                if (BareKey().IsMatch(line)) continue;
                throw new FormatException($"line {lineNumber}: expected KEY=value");
            }
            var key = m.Groups[1].Value;
            var rest = line[m.Length..].TrimStart();
            string value;
            if (rest.Length > 0 && rest[0] is '\'' or '"')
            {
                var quote = rest[0];
                var body = new StringBuilder();
                var segment = rest[1..];
                var startLine = lineNumber;
                while (true)
                {
                    var end = ClosingQuote(segment, quote);
                    if (end >= 0)
                    {
                        body.Append(segment[..end]);
                        var after = segment[(end + 1)..].Trim();
                        if (after.Length > 0 && after[0] != '#')
                            throw new FormatException($"line {lineNumber}: unexpected text after the closing quote");
                        break;
                    }
                    body.Append(segment).Append('\n');
                    if (++i >= lines.Length) throw new FormatException($"line {startLine}: unterminated {quote} quote");
                    lineNumber = i + 1;
                    segment = lines[i];
                }
                value = quote == '\''
                    ? body.ToString().Replace("\\'", "'").Replace("\\\\", "\\")
                    : Interpolate(Unescape(body.ToString()), Known);
            }
            else
            {
                var comment = InlineComment().Match(rest);
                var raw = (comment.Success ? rest[..comment.Index] : rest).TrimEnd();
                value = Interpolate(raw, Known);
            }
            local[key] = value;
            result.Add((key, value));
        }
        return result;
    }

    /// <summary>The index of the first unescaped <paramref name="quote"/>, or -1.</summary>
    private static int ClosingQuote(string s, char quote)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\') { i++; continue; }
            if (s[i] == quote) return i;
        }
        return -1;
    }

    /// <summary>Double-quoted escapes: \n \r \t \" \' \\; any other backslash stays as it is.</summary>
    private static string Unescape(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] != '\\' || i + 1 == s.Length)
            {
                sb.Append(s[i]);
                continue;
            }
            var c = s[++i];
            switch (c)
            {
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case '"' or '\'' or '\\': sb.Append(c); break;
                default: sb.Append('\\').Append(c); break;
            }
        }
        return sb.ToString();
    }

    private static string Interpolate(string s, Func<string, string?> lookup) =>
        Variable().Replace(s, m => lookup(m.Groups[1].Value) is { Length: > 0 } v ? v : m.Groups[3].Success ? m.Groups[3].Value : "");

    [GeneratedRegex(@"^([A-Za-z_][A-Za-z0-9_.\-]*)\s*=")]
    private static partial Regex Assignment();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_.\-]*\s*(#.*)?$")]
    private static partial Regex BareKey();

    [GeneratedRegex(@"\s#")]
    private static partial Regex InlineComment();

    [GeneratedRegex(@"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}")]
    private static partial Regex Variable();
}
