using System.Globalization;
using System.Text;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// The raw HTTP/1.1 requests of tests/corpus/http1/*.http, each with the answer RFC 9112 asks for,
/// played over a raw socket against a server of tests/apps/wire_echo.py (the format is in
/// tests/corpus/README.md). Whatever the case, no request reaching the app may have ambiguous
/// framing: Content-Length and Transfer-Encoding together, or a Content-Length that is not digits.
/// </summary>
public static class Http1Corpus
{
    public static string Directory => Path.Combine(MicaProcess.RepoRoot, "tests", "corpus", "http1");

    /// <summary>The request every case ends with when the connection must stay usable.</summary>
    private const string FollowUp = "GET /follow HTTP/1.1\r\nHost: x\r\n\r\n";
    private const string FollowUpEcho = "GET /follow len=0 cl=- te=-";

    /// <summary>How long the server may take to answer, or to close.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);

    public abstract record Step;
    /// <summary><c>&gt;</c> lines: bytes to send (consecutive lines are sent in one write).</summary>
    public sealed record Send(byte[] Bytes) : Step;
    /// <summary><c>~ TEXT</c>: send what precedes, then wait until the app prints "reading the body of TEXT".</summary>
    public sealed record AwaitApp(string Text) : Step;
    /// <summary><c>&lt; STATUS [ECHO] ["BODY"]</c>: the next response; ECHO is the app's x-echo, absent when the app must not have answered.</summary>
    public sealed record Expect(int Status, string? Echo, byte[]? Body) : Step;

    public sealed record Case(string File, string Name, IReadOnlyList<Step> Steps, bool OpenAfter)
    {
        public override string ToString() => $"{File}: {Name}";
    }

    private static readonly Lazy<IReadOnlyDictionary<string, Case>> All = new(Load);

    public static IReadOnlyDictionary<string, Case> Cases => All.Value;

    public static TheoryData<string> Names()
    {
        var data = new TheoryData<string>();
        foreach (var name in Cases.Keys.Order(StringComparer.Ordinal)) data.Add(name);
        return data;
    }

    private static IReadOnlyDictionary<string, Case> Load()
    {
        var cases = new Dictionary<string, Case>();
        foreach (var path in System.IO.Directory.GetFiles(Directory, "*.http").Order(StringComparer.Ordinal))
            foreach (var c in Parse(Path.GetFileName(path), File.ReadAllLines(path)))
                if (!cases.TryAdd(c.Name, c)) throw new InvalidDataException($"{c}: a case of that name already exists ({cases[c.Name]})");
        return cases;
    }

    public static IEnumerable<Case> Parse(string file, IReadOnlyList<string> lines)
    {
        string? name = null;
        var steps = new List<Step>();
        var pending = new MemoryStream();
        bool? openAfter = null;

        InvalidDataException Error(int line, string what) => new($"{file}:{line + 1}: {what}");

        void FlushPending()
        {
            if (pending.Length == 0) return;
            steps.Add(new Send(pending.ToArray()));
            pending.SetLength(0);
        }

        Case? Finish(int line)
        {
            if (name is null) return null;
            FlushPending();
            if (openAfter is null) throw Error(line, $"case '{name}' does not end with '= open' or '= close'");
            if (steps.Count == 0) throw Error(line, $"case '{name}' sends nothing");
            var done = new Case(file, name, [.. steps], openAfter.Value);
            name = null;
            steps.Clear();
            openAfter = null;
            return done;
        }

        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.StartsWith("### ", StringComparison.Ordinal))
            {
                if (Finish(i) is { } done) yield return done;
                name = line[4..].Trim();
                continue;
            }
            if (line.Length == 0 || line[0] == '#') continue;
            if (name is null) throw Error(i, "a step before the first '### name'");
            if (openAfter is not null) throw Error(i, $"a step after the end ('= ...') of case '{name}'");
            switch (line[0])
            {
                case '>':
                    var bytes = Unescape(line.Length > 1 && line[1] == ' ' ? line[2..] : line[1..], m => Error(i, m));
                    pending.Write(bytes);
                    break;
                case '~':
                    FlushPending();
                    steps.Add(new AwaitApp(line[1..].Trim()));
                    break;
                case '<':
                    FlushPending();
                    steps.Add(ParseExpect(line[1..].Trim(), m => Error(i, m)));
                    break;
                case '=':
                    openAfter = line[1..].Trim() switch
                    {
                        "open" => true,
                        "close" => false,
                        var other => throw Error(i, $"'= {other}': expected '= open' or '= close'"),
                    };
                    break;
                default:
                    throw Error(i, $"unknown line '{line}'");
            }
        }
        if (Finish(lines.Count) is { } last) yield return last;
    }

    private static Expect ParseExpect(string text, Func<string, Exception> error)
    {
        byte[]? body = null;
        if (text.EndsWith('"'))
        {
            var open = text.IndexOf('"');
            if (open == text.Length - 1) throw error($"unterminated body in '< {text}'");
            body = Unescape(text[(open + 1)..^1], error);
            text = text[..open].TrimEnd();
        }
        var space = text.IndexOf(' ');
        var statusText = space < 0 ? text : text[..space];
        if (!int.TryParse(statusText, NumberStyles.None, CultureInfo.InvariantCulture, out var status) || status is < 100 or > 599)
            throw error($"'< {text}': expected a status code first");
        return new Expect(status, space < 0 ? null : text[(space + 1)..].Trim(), body);
    }

    /// <summary>\r \n \t \0 \\ \" \xHH, and \{N}X for N times X (one character or one escape).</summary>
    public static byte[] Unescape(string text, Func<string, Exception> error)
    {
        var bytes = new List<byte>(text.Length);
        var i = 0;
        while (i < text.Length)
        {
            if (text[i] == '\\' && i + 1 < text.Length && text[i + 1] == '{')
            {
                var close = text.IndexOf('}', i);
                if (close < 0 || !int.TryParse(text.AsSpan(i + 2, close - i - 2), NumberStyles.None, CultureInfo.InvariantCulture, out var count))
                    throw error($"bad repetition at '{text[i..]}'");
                i = close + 1;
                if (i >= text.Length) throw error("a repetition with nothing to repeat");
                var one = One(text, ref i, error);
                for (var k = 0; k < count; k++) bytes.Add(one);
                continue;
            }
            bytes.Add(One(text, ref i, error));
        }
        return [.. bytes];
    }

    private static byte One(string text, ref int i, Func<string, Exception> error)
    {
        var c = text[i++];
        if (c != '\\')
        {
            if (c > 0xFF) throw error($"'{c}' is not a byte: write it as \\xHH");
            return (byte)c;
        }
        if (i >= text.Length) throw error("a lone backslash at the end of a line");
        var e = text[i++];
        switch (e)
        {
            case 'r': return (byte)'\r';
            case 'n': return (byte)'\n';
            case 't': return (byte)'\t';
            case '0': return 0;
            case '\\': return (byte)'\\';
            case '"': return (byte)'"';
            case 'x' when i + 2 <= text.Length && byte.TryParse(text.AsSpan(i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b):
                i += 2;
                return b;
            default: throw error($"unknown escape '\\{e}'");
        }
    }

    // ------------------------------------------------------------------ playing a case

    public static async Task RunAsync(string name, MicaProcess mica)
    {
        var c = Cases[name];
        var mark = mica.Mark();
        await using var connection = await RawConnection.ConnectAsync(mica);
        connection.Timeout = Bound;
        var seen = new List<string>();
        string Context() => $"case {c}\nresponses so far:\n  {string.Join("\n  ", seen)}\n{mica.Dump(30)}";

        RawResponse? lastFinal = null;
        foreach (var step in c.Steps)
        {
            switch (step)
            {
                case Send send:
                    await connection.SendAsync(send.Bytes);
                    break;
                case AwaitApp wait:
                    await mica.WaitForStdoutAsync("reading the body of " + wait.Text, Bound, mark);
                    break;
                case Expect expect:
                    RawResponse response;
                    try { response = await connection.ReadResponseAsync(); }
                    catch (Exception e) when (e is IOException or InvalidDataException or OperationCanceledException)
                    {
                        throw new Xunit.Sdk.XunitException($"expected {Describe(expect)}, got {e.GetType().Name}: {e.Message}\n{Context()}");
                    }
                    seen.Add(Describe(response));
                    AssertUnambiguous(response, Context);
                    Assert.True(Matches(response, expect), $"expected {Describe(expect)}, got {Describe(response)}\n{Context()}");
                    if (response.Status >= 200) lastFinal = response;
                    break;
            }
        }

        if (c.OpenAfter)
        {
            Assert.True(lastFinal?.Header("connection")?.Contains("close", StringComparison.OrdinalIgnoreCase) != true,
                $"the connection should stay open, yet the last response says Connection: close\n{Context()}");
            await connection.SendAsync(FollowUp);
            var follow = await connection.ReadResponseAsync();
            seen.Add(Describe(follow));
            Assert.True(follow.Status == 200 && follow.Header("x-echo") == FollowUpEcho,
                $"the connection stayed open, but the next request on it came back as {Describe(follow)} (expected 200 {FollowUpEcho})\n{Context()}");
        }
        else
        {
            var rest = await connection.ReadUntilClosedAsync(Bound);
            Assert.True(rest is not null, $"the server kept the connection open for {Bound.TotalSeconds} s after the answer\n{Context()}");
            Assert.True(rest.Length == 0, $"the server sent more than expected before closing: '{Excerpt(rest)}'\n{Context()}");
            if (lastFinal is not null)
                Assert.True(lastFinal.Header("connection")?.Contains("close", StringComparison.OrdinalIgnoreCase) == true,
                    $"the server closed the connection without saying Connection: close in its last response\n{Context()}");
        }
    }

    private static bool Matches(RawResponse response, Expect expect) =>
        response.Status == expect.Status
        && response.Header("x-echo") == expect.Echo
        && (expect.Body is null || response.Body.AsSpan().SequenceEqual(expect.Body));

    /// <summary>The framing the app was given (its x-echo) is never ambiguous.</summary>
    private static void AssertUnambiguous(RawResponse response, Func<string> context)
    {
        if (response.Header("x-echo") is not { } echo) return;
        var fields = echo.Split(' ');
        var cl = fields.Single(f => f.StartsWith("cl=", StringComparison.Ordinal))[3..];
        var te = fields.Single(f => f.StartsWith("te=", StringComparison.Ordinal))[3..];
        Assert.False(cl != "-" && te != "-", $"the app got both Content-Length and Transfer-Encoding: {echo}\n{context()}");
        Assert.True(cl == "-" || cl.All(char.IsAsciiDigit), $"the app got a Content-Length that is not a number: {echo}\n{context()}");
    }

    private static string Describe(Expect e) =>
        $"{e.Status}{(e.Echo is null ? " (not from the app)" : " " + e.Echo)}{(e.Body is null ? "" : $" \"{Excerpt(e.Body)}\"")}";

    private static string Describe(RawResponse r) =>
        $"{r.Status}{(r.Header("x-echo") is { } echo ? " " + echo : " (not from the app)")} \"{Excerpt(r.Body)}\"{(r.Header("connection") is { } conn ? $" [Connection: {conn}]" : "")}";

    /// <summary>At most 200 bytes of <paramref name="bytes"/>, escaped, for a message.</summary>
    private static string Excerpt(byte[] bytes) =>
        bytes.Length <= 200 ? Escape(bytes) : $"{Escape(bytes.AsSpan(0, 200))}... ({bytes.Length} bytes)";

    /// <summary>
    /// The bytes written with this format's escapes (runs of 8 or more as a repetition), so that
    /// any request, a fuzzer's finding say, can be pasted into a case.
    /// </summary>
    public static string Escape(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder();
        for (var i = 0; i < bytes.Length; i++)
        {
            var run = 1;
            while (i + run < bytes.Length && bytes[i + run] == bytes[i]) run++;
            var one = bytes[i] switch
            {
                (byte)'\r' => "\\r", (byte)'\n' => "\\n", (byte)'\t' => "\\t", 0 => "\\0", (byte)'\\' => "\\\\", (byte)'"' => "\\\"",
                < 0x20 or >= 0x7F => $"\\x{bytes[i]:X2}",
                _ => ((char)bytes[i]).ToString(),
            };
            if (run >= 8)
            {
                text.Append($"\\{{{run}}}{one}");
                i += run - 1;
            }
            else text.Append(one);
        }
        return text.ToString();
    }
}
