using System.Net;
using System.Text.RegularExpressions;
using Mica.Server.Http;
using Mica.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Xunit;

namespace Mica.Tests;

/// <summary><c>--access-log-fmt</c>: Granian's %-format over its atoms, rendered as Python would.</summary>
public sealed class AccessLogFormatTests
{
    private static readonly AccessLogEntry Entry = new(
        "10.1.2.3", new DateTimeOffset(2026, 11, 23, 14, 5, 9, TimeSpan.FromHours(1)), 12.34567, 404, "/a b", "x=1&y=%20",
        "GET", "https", "HTTP/1.1", new HeaderDictionary { ["User-Agent"] = "curl/8", ["X-Two"] = new(["a", "b"]) });

    private static string Render(string format) => AccessLogFormat.Parse(format).Render(Entry);

    [Fact]
    public void The_default_format_is_Granians()
    {
        Assert.Equal("[2026-11-23 14:05:09 +0100] 10.1.2.3 - \"GET /a b HTTP/1.1\" 404 12.346", Render(AccessLogFormat.Default));
    }

    [Theory]
    [InlineData("%(addr)s", "10.1.2.3")]
    [InlineData("%(time)s", "2026-11-23 14:05:09 +0100")]
    [InlineData("%(dt_ms).1f", "12.3")]
    [InlineData("%(dt_ms)f", "12.345670")]
    [InlineData("%(dt_ms)d", "12")]
    [InlineData("%(status)d", "404")]
    [InlineData("%(status)s", "404")]
    [InlineData("%(path)s", "/a b")]
    [InlineData("%(query_string)s", "x=1&y=%20")]
    [InlineData("%(method)s", "GET")]
    [InlineData("%(scheme)s", "https")]
    [InlineData("%(protocol)s", "HTTP/1.1")]
    [InlineData("%(header{user-agent})s", "curl/8")]
    [InlineData("%(header{ User-Agent })s", "curl/8")]
    [InlineData("%(header{x-two})s", "a,b")]
    [InlineData("%(header{missing})s", "-")]
    public void Each_atom(string format, string expected) => Assert.Equal(expected, Render(format));

    [Theory]
    [InlineData("%(status)5d|", "  404|")]
    [InlineData("%(status)-5d|", "404  |")]
    [InlineData("%(status)05d", "00404")]
    [InlineData("%(status)+d", "+404")]
    [InlineData("%(status)x %(status)X %(status)o", "194 194 624")]
    [InlineData("%(method)6s|%(method)-6s|", "   GET|GET   |")]
    [InlineData("%(method).2s", "GE")]
    [InlineData("%(method)r", "'GET'")]
    [InlineData("%(dt_ms)09.3f", "00012.346")]
    [InlineData("%(dt_ms).2e", "1.23e+01")]
    [InlineData("100%% %(status)d", "100% 404")]
    [InlineData("no atoms at all", "no atoms at all")]
    public void Python_flags_width_and_precision(string format, string expected) => Assert.Equal(expected, Render(format));

    [Theory]
    [InlineData("%(nope)s", "unknown atom 'nope'")]
    [InlineData("%(status)", "bad conversion")]
    [InlineData("%(status)q", "bad conversion")]
    [InlineData("%(status", "unclosed")]
    [InlineData("50% done", "must be followed by")]
    public void Bad_formats_are_refused_with_the_reason(string format, string reason)
    {
        var error = Assert.Throws<FormatException>(() => AccessLogFormat.Parse(format));
        Assert.Contains(reason, error.Message);
    }
}

/// <summary><c>--access-log</c> end to end: one line per request on stdout, for every interface and protocol.</summary>
public sealed class AccessLogServerTests
{
    private const string AllAtoms = "%(addr)s|%(time)s|%(dt_ms).3f|%(status)d|%(path)s|%(query_string)s|%(method)s|%(scheme)s|%(protocol)s|%(header{user-agent})s";

    [Fact]
    public async Task Each_ASGI_request_gets_a_line_with_every_atom()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--access-log", "--access-log-fmt", AllAtoms]);
        using var client = mica.CreateClient();
        client.DefaultRequestHeaders.UserAgent.ParseAdd("access-test/1.0");
        using (var response = await client.GetAsync("/status?code=418&x=%20y")) Assert.Equal(418, (int)response.StatusCode);
        var line = (await mica.WaitForStdoutAsync("|418|")).Text;
        var fields = line.Split('|');
        Assert.Equal(10, fields.Length);
        Assert.Equal("127.0.0.1", fields[0]);
        Assert.Matches(@"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$", fields[1]);
        Assert.True(double.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture) >= 0, line);
        Assert.Equal(["/status", "code=418&x=%20y", "GET", "http", "HTTP/1.1", "access-test/1.0"], fields[4..]);
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task WSGI_and_HTTP2_requests_are_logged_with_the_default_format()
    {
        await using var mica = await MicaProcess.StartAsync("wsgi_app:app", ["--interface", "wsgi", "--access-log"]);
        var url = $"http://127.0.0.1:{mica.Port}";
        using (var http2 = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact })
        using (var response = await http2.PostAsync(url + "/no%20route", new StringContent("x")))
            Assert.Equal(404, (int)response.StatusCode);
        var line = (await mica.WaitForStdoutAsync("\"POST /no route HTTP/2\"")).Text;
        Assert.Matches(new Regex(@"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] 127\.0\.0\.1 - ""POST /no route HTTP/2"" 404 \d+\.\d{3}$"), line);
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Without_the_option_nothing_is_logged_per_request()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--access-log-fmt", "ACCESS %(path)s"]);
        using var client = mica.CreateClient();
        using (var response = await client.GetAsync("/status?code=200")) response.EnsureSuccessStatusCode();
        Assert.Equal(0, await mica.StopAsync());   // a queued line would be written before the worker exits
        Assert.DoesNotContain(mica.Lines, l => l.Text.Contains("ACCESS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_bad_format_is_one_line_on_stderr_and_exit_2()
    {
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--access-log", "--access-log-fmt", "%(nope)s", "raw_app:app"], raw: true);
        Assert.Equal(2, await mica.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Single(mica.ServerStderrLines);
        Assert.Contains("unknown atom 'nope'", mica.ServerStderrLines[0]);
    }
}
