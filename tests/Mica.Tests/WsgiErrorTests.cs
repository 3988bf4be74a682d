using System.Net;
using System.Text;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Apps that raise or break the start_response rules: 500 or an aborted response, logged, and the server serves on (wsgi_app.py).</summary>
public sealed class WsgiErrorTests(WsgiServer server) : ServerTests<WsgiServer>(server)
{
    private async Task<RawResponse> GetRawAsync(string target)
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get(target));
        try
        {
            return await connection.ReadResponseAsync();
        }
        catch (FormatException e)
        {
            throw new Xunit.Sdk.XunitException($"GET {target}: the server sent a malformed status line ({e.Message})");
        }
    }

    /// <summary>Something new on stderr after <paramref name="mark"/> (the server logged the error).</summary>
    private async Task AssertLoggedAsync(int mark, string? text = null)
    {
        if (text is not null) await Mica.WaitForStderrAsync(text, after: mark);
        else await Mica.WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Trim().Length > 0, TimeSpan.FromSeconds(10), mark);
    }

    [Fact]
    public async Task Exception_before_start_response_gives_500_with_a_text_body_and_logs_the_traceback()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        var response = await GetRawAsync($"/raise-before?key={key}");
        Assert.Equal(500, response.Status);
        Assert.False(string.IsNullOrWhiteSpace(response.BodyText), "the 500 has an empty body");
        Assert.StartsWith("text/", response.Header("Content-Type") ?? "text/");
        var message = await Mica.WaitForStderrAsync($"ValueError: boom-before-{key}", after: mark);
        Assert.True(Mica.Lines.Any(l => l.Source == Output.Stderr && l.Index > mark && l.Index < message.Index
                                        && l.Text.Contains("Traceback (most recent call last)", StringComparison.Ordinal)),
            "no traceback logged before the exception line\n" + Mica.Dump(40));
        Assert.Contains(Mica.Lines, l => l.Index > mark && l.Index < message.Index && l.Text.Contains("raise_before", StringComparison.Ordinal));
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Exception_mid_stream_aborts_the_connection()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        await using (var connection = await RawConnection.ConnectAsync(Mica))
        {
            await connection.SendAsync(RawConnection.Get($"/raise-mid?key={key}"));
            var head = await connection.ReadHeadAsync();
            Assert.Equal(200, head.Status);
            Assert.True(head.IsChunked);
            Assert.Equal("partial\n"u8.ToArray(), await connection.ReadChunkAsync());
            // No terminating chunk: the response must end by the connection closing (or being reset).
            var ex = await Record.ExceptionAsync(connection.ReadChunkAsync);
            Assert.True(ex is EndOfStreamException or IOException,
                $"expected the connection to be aborted, got {ex?.GetType().Name ?? "a complete chunked body"}: {ex?.Message}");
        }
        await AssertLoggedAsync(mark, $"ValueError: boom-mid-{key}");
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Exception_mid_stream_is_an_error_for_HttpClient()
    {
        var key = Keys.New();
        using var client = Mica.CreateClient();
        using var response = await client.GetAsync($"/raise-mid?key={key}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var ex = await Record.ExceptionAsync(() => response.Content.ReadAsStringAsync());
        Assert.True(ex is HttpRequestException or IOException, $"an incomplete response must fail to read, got {ex?.GetType().Name ?? "no error"}");
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Theory]
    [InlineData("int")]
    [InlineData("abc")]
    [InlineData("empty")]
    [InlineData("bytes")]
    [InlineData("none")]
    public async Task Invalid_status_gives_500(string kind)
    {
        var mark = Mica.Mark();
        var response = await GetRawAsync($"/bad-status?kind={kind}");
        Assert.Equal(500, response.Status);
        Assert.DoesNotContain("accepted", response.BodyText);
        await AssertLoggedAsync(mark);
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Theory]
    [InlineData("dict")]
    [InlineData("not-a-pair")]
    [InlineData("str-item")]
    [InlineData("int-value")]
    [InlineData("bytes-name")]
    [InlineData("none")]
    [InlineData("newline-value")]
    [InlineData("crlf-value")]
    [InlineData("newline-name")]
    public async Task Invalid_headers_give_500(string kind)
    {
        var mark = Mica.Mark();
        var response = await GetRawAsync($"/bad-headers?kind={kind}");
        Assert.Equal(500, response.Status);
        Assert.DoesNotContain("accepted", response.BodyText);
        Assert.DoesNotContain(response.Headers, h => h.Name.Equals("Injected", StringComparison.OrdinalIgnoreCase));
        await AssertLoggedAsync(mark);
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Str_body_item_gives_500()
    {
        var mark = Mica.Mark();
        var response = await GetRawAsync("/str-body");
        Assert.Equal(500, response.Status);
        Assert.DoesNotContain("a str", response.BodyText);
        await AssertLoggedAsync(mark);
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Theory]
    [InlineData("/no-start")]
    [InlineData("/no-start-empty")]
    public async Task Returning_without_calling_start_response_gives_500(string target)
    {
        var mark = Mica.Mark();
        var response = await GetRawAsync(target);
        Assert.Equal(500, response.Status);
        Assert.DoesNotContain("no start_response", response.BodyText);
        await AssertLoggedAsync(mark);
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Keep_alive_connection_survives_a_500()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/raise-before?key={Keys.New()}"));
        var first = await connection.ReadResponseAsync();
        Assert.Equal(500, first.Status);
        if (first.Header("Connection")?.Contains("close", StringComparison.OrdinalIgnoreCase) == true) return;   // closing is allowed too
        await connection.SendAsync(RawConnection.Get("/ok"));
        var second = await connection.ReadResponseAsync();
        Assert.Equal(200, second.Status);
        Assert.Equal("ok", Encoding.ASCII.GetString(second.Body));
    }
}

/// <summary>
/// A malformed request body met by the app's read is the client's doing: 400 and close (see also
/// tests/corpus), the app's failed read logged at debug, not as an error with a traceback.
/// </summary>
public sealed class WsgiMalformedBodyTests
{
    [Fact]
    public async Task A_malformed_chunked_body_gets_400_and_is_logged_at_debug_not_as_an_app_error()
    {
        await using var mica = await MicaProcess.StartAsync(Wsgi.App, ["--interface", "wsgi", "--log-level", "debug"]);
        var key = Keys.New();
        var mark = mica.Mark();
        await using (var connection = await RawConnection.ConnectAsync(mica))
        {
            await connection.SendAsync($"POST /input?op=read&announce={key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
            await mica.WaitForStdoutAsync($"READING {key}");
            await connection.SendAsync("zz\r\nhello\r\n0\r\n\r\n");
            var response = await connection.ReadResponseAsync();
            Assert.Equal(400, response.Status);
            Assert.Equal("close", response.Header("connection"));
        }
        await mica.WaitForStderrAsync("Request body of POST /input unreadable: error reading the request body: Bad chunk size data", after: mark);
        Assert.DoesNotContain(mica.Lines, l => l.Index > mark && l.Text.Contains("Exception in WSGI application", StringComparison.Ordinal));
        await Wsgi.AssertStillServingAsync(mica);
    }
}
