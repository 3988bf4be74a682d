using System.Text;
using Mica.Cli;
using Mica.Server.Asgi;
using Mica.Server.Hosting;
using Mica.Server.Http;
using Xunit;

namespace Mica.Tests;

/// <summary><c>RequestTarget.PercentDecode</c> (Mica.Server, internal, visible to Mica.Tests).</summary>
public sealed class PercentDecodeTests
{
    private static byte[] Decode(string source) => Decode(Encoding.Latin1.GetBytes(source));

    private static byte[] Decode(byte[] source)
    {
        var destination = new byte[source.Length];
        var n = RequestTarget.PercentDecode(source, destination);
        return destination[..n];
    }

    [Theory]
    [InlineData("", "")]
    [InlineData("/plain/path", "/plain/path")]
    [InlineData("%41", "A")]
    [InlineData("/a%2Fb", "/a/b")]
    [InlineData("/a%2fb", "/a/b")]
    [InlineData("%7Euser", "~user")]
    [InlineData("sp%20ace", "sp ace")]
    [InlineData("a+b", "a+b")]                // not form decoding: '+' stays
    [InlineData("%25", "%")]
    [InlineData("%2541", "%41")]              // decoded once only
    [InlineData("%%41", "%A")]
    [InlineData("100%", "100%")]              // malformed escapes are kept as they are
    [InlineData("%4", "%4")]
    [InlineData("%G1", "%G1")]
    [InlineData("%1G", "%1G")]
    [InlineData("a%", "a%")]
    [InlineData("%%", "%%")]
    [InlineData("%20%20", "  ")]
    [InlineData("/x%41", "/xA")]              // escape at the very end
    public void Decodes_like_urllib_unquote_to_bytes(string source, string expected)
    {
        Assert.Equal(Encoding.Latin1.GetBytes(expected), Decode(source));
    }

    [Fact]
    public void Utf8_escapes_become_utf8_bytes()
    {
        Assert.Equal("café"u8.ToArray(), Decode("caf%C3%A9"));
        Assert.Equal("caf\u00e9"u8.ToArray(), Decode("caf%c3%a9"));
        Assert.Equal("€"u8.ToArray(), Decode("%E2%82%AC"));
    }

    [Fact]
    public void Nul_and_high_bytes_are_decoded()
    {
        Assert.Equal(new byte[] { 0x00, 0xFF, 0x80 }, Decode("%00%FF%80"));
    }

    [Fact]
    public void Raw_non_ascii_bytes_pass_through()
    {
        var source = new byte[] { (byte)'/', 0xC3, 0xA9, (byte)'%', (byte)'4', (byte)'1' };
        Assert.Equal(new byte[] { (byte)'/', 0xC3, 0xA9, (byte)'A' }, Decode(source));
    }

    [Fact]
    public void Output_is_never_longer_than_input()
    {
        var random = new Random(11);
        const string alphabet = "%0123456789abcdefABCDEFgG/+ ";
        for (var i = 0; i < 2000; i++)
        {
            var source = new string(Enumerable.Range(0, random.Next(0, 12)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
            var decoded = Decode(source);
            Assert.True(decoded.Length <= source.Length, source);
            Assert.Equal(Reference(source), decoded);
        }
    }

    /// <summary>urllib.parse.unquote_to_bytes, written plainly.</summary>
    private static byte[] Reference(string s)
    {
        var result = new List<byte>();
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '%' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                result.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else result.Add((byte)s[i]);
        }
        return [.. result];
    }
}

/// <summary><c>Mica.Cli.OptionTable.ParseDuration</c> (mica, internal, visible to Mica.Tests).</summary>
public sealed class DurationParsingTests
{
    private static int? ParseDuration(string text) => OptionTable.ParseDuration(text);

    [Theory]
    [InlineData("0", 0)]
    [InlineData("30", 30)]
    [InlineData("1800", 1800)]
    [InlineData("45s", 45)]
    [InlineData("2m", 120)]
    [InlineData("1m30s", 90)]
    [InlineData("2h", 7200)]
    [InlineData("1d", 86400)]
    [InlineData("1d2h3m4s", 93784)]
    [InlineData("1d4s", 86404)]
    [InlineData("90m", 5400)]
    [InlineData("0s", 0)]
    public void Parses_seconds_and_unit_suffixes(string text, int expected)
    {
        Assert.Equal(expected, ParseDuration(text));
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("-5")]
    [InlineData("+5")]
    [InlineData(" 5")]
    [InlineData("5 ")]
    [InlineData("1.5")]
    [InlineData("1s2m")]          // units out of order
    [InlineData("1h1h")]          // repeated unit
    [InlineData("1h 30m")]
    [InlineData("s")]
    [InlineData("1x")]
    [InlineData("1H")]
    public void Rejects_malformed_durations(string text)
    {
        Assert.Null(ParseDuration(text));
    }

    [Theory]
    [InlineData("99999999999")]              // too large as plain seconds
    [InlineData("99999999999s")]             // too large for int seconds
    [InlineData("100000d")]                  // overflows int once multiplied
    [InlineData("99999999999999999999s")]    // does not even fit in a long
    [InlineData("99999999999999999999d")]
    public void Rejects_durations_too_large_instead_of_throwing(string text)
    {
        Assert.Null(ParseDuration(text));
    }
}

/// <summary><c>Mica.Cli.MicaCommand.ParseBool</c>: click's boolean words, for MICA_X/GRANIAN_X flags.</summary>
public sealed class BooleanParsingTests
{
    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("TRUE", true)]
    [InlineData("t", true)]
    [InlineData("yes", true)]
    [InlineData("y", true)]
    [InlineData("on", true)]
    [InlineData(" on ", true)]
    [InlineData("0", false)]
    [InlineData("false", false)]
    [InlineData("f", false)]
    [InlineData("no", false)]
    [InlineData("n", false)]
    [InlineData("Off", false)]
    [InlineData("maybe", null)]
    [InlineData("2", null)]
    [InlineData("", null)]
    public void Parses_click_boolean_words(string text, bool? expected)
    {
        Assert.Equal(expected, MicaCommand.ParseBool(text));
    }
}

/// <summary>The format of tests/corpus (<see cref="Infrastructure.Http1Corpus"/>): a mistake in it must fail loudly, not test less.</summary>
public sealed class Http1CorpusFormatTests
{
    private static Exception Fail(string message) => new InvalidDataException(message);

    [Theory]
    [InlineData(@"GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\n")]
    [InlineData(@"a\tb\0c\\d\""", "a\tb\0c\\d\"")]
    [InlineData(@"\x80\xFF\x0b", "\u0080\u00FF\u000B")]
    [InlineData(@"5;\{4}a\r\n", "5;aaaa\r\n")]
    [InlineData(@"\{3}\r\n", "\r\r\r\n")]
    public void Escapes_give_the_bytes(string text, string expected) =>
        Assert.Equal(Encoding.Latin1.GetBytes(expected), Infrastructure.Http1Corpus.Unescape(text, Fail));

    [Theory]
    [InlineData(@"\q")]
    [InlineData(@"\x4")]
    [InlineData(@"a\")]
    [InlineData(@"\{x}a")]
    [InlineData(@"\{3}")]
    [InlineData("é€")]
    public void Bad_escapes_are_refused(string text) =>
        Assert.Throws<InvalidDataException>(() => Infrastructure.Http1Corpus.Unescape(text, Fail));

    [Fact]
    public void A_case_reads_as_its_steps()
    {
        var cases = Infrastructure.Http1Corpus.Parse("t.http", [
            "# file comment", "### one", "# why", @"> POST /echo HTTP/1.1\r\n", @"> \r\n", "~ POST /echo",
            "> abc", "< 100", @"< 200 POST /echo len=3 cl=- te=- ""a\tc""", "< 400", "= close", "", "### two", "> x", "= open"]).ToList();
        Assert.Equal(["one", "two"], cases.Select(c => c.Name));
        var steps = cases[0].Steps;
        Assert.Equal("POST /echo HTTP/1.1\r\n\r\n", Encoding.Latin1.GetString(Assert.IsType<Infrastructure.Http1Corpus.Send>(steps[0]).Bytes));
        Assert.Equal("POST /echo", Assert.IsType<Infrastructure.Http1Corpus.AwaitApp>(steps[1]).Text);
        Assert.Equal(new Infrastructure.Http1Corpus.Expect(100, null, null), steps[3]);
        var echo = Assert.IsType<Infrastructure.Http1Corpus.Expect>(steps[4]);
        Assert.Equal((200, "POST /echo len=3 cl=- te=-", "a\tc"), (echo.Status, echo.Echo, Encoding.Latin1.GetString(echo.Body!)));
        Assert.False(cases[0].OpenAfter);
        Assert.True(cases[1].OpenAfter);
    }

    [Theory]
    [InlineData("### a", "> x")]                 // no end
    [InlineData("> x", "= open")]                // no name
    [InlineData("### a", "= open")]              // sends nothing
    [InlineData("### a", "> x", "= shut")]
    [InlineData("### a", "> x", "< abc", "= open")]
    [InlineData("### a", "> x", "= open", "> y")]
    [InlineData("### a", "x", "= open")]
    public void A_malformed_case_is_refused(params string[] lines) =>
        Assert.Throws<InvalidDataException>(() => Infrastructure.Http1Corpus.Parse("t.http", lines).ToList());
}

/// <summary>The fuzzer's cases are reproducible, and print as corpus text that reads back as the same bytes.</summary>
public sealed class Http1FuzzerTests
{
    [Fact]
    public void A_case_is_the_same_bytes_for_the_same_seed_and_index()
    {
        var a = new Infrastructure.Http1Fuzzer(null!, 7);
        var b = new Infrastructure.Http1Fuzzer(null!, 7);
        for (var i = 0; i < 200; i++) Assert.Equal(a.Case(i), b.Case(i));
        Assert.NotEqual(a.Case(1), new Infrastructure.Http1Fuzzer(null!, 8).Case(1));
    }

    [Fact]
    public void Escaped_bytes_read_back_as_the_same_bytes()
    {
        var fuzzer = new Infrastructure.Http1Fuzzer(null!, 11);
        for (var i = 0; i < 500; i++)
        {
            var bytes = fuzzer.Case(i);
            Assert.Equal(bytes, Infrastructure.Http1Corpus.Unescape(Infrastructure.Http1Corpus.Escape(bytes), m => new InvalidDataException(m)));
        }
    }
}

/// <summary>ConnectionDrain's wait before a draining worker stops Kestrel.</summary>
public sealed class ConnectionDrainTests
{
    [Fact]
    public async Task No_connection_left_is_not_trusted_right_after_activity()
    {
        // A connection just accepted is not counted until Kestrel's pipeline starts for it; an
        // accept and a request both mark activity, which stands in for that accept here.
        var drain = new ConnectionDrain();
        drain.BeginDrain();
        drain.RequestStarted();
        drain.RequestEnded();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await drain.WaitUntilQuietAsync(TimeSpan.FromSeconds(5));
        Assert.InRange(clock.Elapsed, TimeSpan.FromMilliseconds(30), TimeSpan.FromSeconds(2));
    }

    [Fact]
    public async Task An_idle_worker_with_no_connection_stops_at_once()
    {
        var drain = new ConnectionDrain();   // no activity ever
        drain.BeginDrain();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await drain.WaitUntilQuietAsync(TimeSpan.FromSeconds(5));
        Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(40), $"waited {clock.Elapsed.TotalMilliseconds:0} ms");
    }
}
