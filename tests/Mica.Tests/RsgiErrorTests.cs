using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// RSGI apps that misbehave: raise, return without a response, respond twice, start a stream after
/// responding, raise mid-stream, give a wrong type or status. The client gets a sane answer, the
/// log says what happened, and the worker keeps serving.
/// </summary>
public sealed class RsgiErrorTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    private Task<RawResponse> GetAsync(string target) => Rsgi.RawAsync(Mica, Rsgi.Request("GET", target));

    [Fact]
    public async Task An_exception_before_the_response_is_a_500_with_the_traceback_logged()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        var response = await GetAsync($"/raise?key={key}");
        Assert.Equal(500, response.Status);
        var logged = await Rsgi.WaitForErrorAsync(Mica, "Exception in RSGI application", mark);
        var traceback = await Mica.WaitForStderrAsync($"RuntimeError: rsgi boom {key}", TimeSpan.FromSeconds(10), logged.Index);
        var between = Mica.Lines.Where(l => l.Index > logged.Index && l.Index < traceback.Index).Select(l => l.Text).ToList();
        Assert.Contains(between, l => l.StartsWith("Traceback", StringComparison.Ordinal));
        Assert.Contains(between, l => l.Contains("rsgi_app.py", StringComparison.Ordinal) && l.Contains("raise_route", StringComparison.Ordinal));
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Returning_without_a_response_is_a_500_and_logged()
    {
        var mark = Mica.Mark();
        var response = await GetAsync("/no-response");
        Assert.Equal(500, response.Status);
        await Rsgi.WaitForErrorAsync(Mica, "returned without sending a response", mark);
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task A_second_response_is_ignored_and_logged()
    {
        var mark = Mica.Mark();
        var response = await GetAsync("/second-response");
        Assert.Equal(200, response.Status);
        Assert.Equal("first", response.BodyText);
        Assert.Equal("first", response.Header("x-which"));
        var logged = await Rsgi.WaitForErrorAsync(Mica, "after the response was already sent", mark);
        Assert.Contains("response_bytes", logged.Text);
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task A_response_method_during_a_stream_is_ignored_and_logged_and_the_stream_goes_on()
    {
        var mark = Mica.Mark();
        var response = await GetAsync("/response-after-stream");
        Assert.Equal(200, response.Status);
        Assert.Equal("ab", response.BodyText);
        await Rsgi.WaitForErrorAsync(Mica, "after the response was already sent", mark);
    }

    [Fact]
    public async Task Response_stream_after_a_response_raises_ProtocolError()
    {
        var key = Keys.New();
        var response = await GetAsync($"/stream-after-response?key={key}");
        Assert.Equal(200, response.Status);
        Assert.Equal("first", response.BodyText);
        Assert.Equal("ProtocolError", await Rsgi.WaitForEventAsync(Mica, "rsgi-stream-after-response", key));
    }

    [Fact]
    public async Task An_exception_mid_stream_is_logged_and_the_response_is_cut_short()
    {
        // The 200 and the first chunk are out; the client must be able to tell the body is incomplete:
        // no terminating chunk, the connection is closed.
        var key = Keys.New();
        var mark = Mica.Mark();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/raise-in-stream?key={key}"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.Equal("partial", System.Text.Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        var ended = await Record.ExceptionAsync(() => connection.ReadChunkAsync());
        Assert.True(ended is EndOfStreamException or IOException, $"expected the connection to end without the last chunk, got {ended?.ToString() ?? "a chunk"}");
        await Rsgi.WaitForErrorAsync(Mica, "Exception in RSGI application", mark);
        await Mica.WaitForStderrAsync($"RuntimeError: rsgi stream boom {key}", TimeSpan.FromSeconds(10), mark);
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Response_str_with_bytes_is_a_TypeError_logged_and_a_500()
    {
        var mark = Mica.Mark();
        var response = await GetAsync("/str-not-str");
        Assert.Equal(500, response.Status);
        await Rsgi.WaitForErrorAsync(Mica, "Exception in RSGI application", mark);
        await Mica.WaitForStderrAsync("TypeError: response_str()", TimeSpan.FromSeconds(10), mark);
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Theory]
    [InlineData(299)]
    [InlineData(599)]
    public async Task Any_three_digit_status_is_sent(int status)
    {
        var response = await GetAsync($"/status?code={status}");
        Assert.Equal(status, response.Status);
        Assert.Equal($"status {status}", response.BodyText);
    }

    [Theory]
    [InlineData(99)]
    [InlineData(1000)]
    [InlineData(-1)]
    [InlineData(70000)]
    public async Task A_status_outside_100_to_999_is_a_500_and_logged(int status)
    {
        var mark = Mica.Mark();
        var response = await GetAsync($"/status?code={status}");
        Assert.Equal(500, response.Status);
        await Rsgi.WaitForErrorAsync(Mica, "", mark);
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task An_unknown_route_raising_KeyError_is_a_500()
    {
        // The app dispatches through a dict, as Granian's test app does.
        var response = await GetAsync("/no-such-route");
        Assert.Equal(500, response.Status);
        await Rsgi.AssertStillServingAsync(Mica);
    }
}
