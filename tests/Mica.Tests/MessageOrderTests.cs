using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>The ASGI send() rules and what happens when an app breaks them or raises (raw_app.py).</summary>
public sealed class MessageOrderTests(RawAppServer server) : ServerTests<RawAppServer>(server)
{
    [Fact]
    public async Task Sending_body_before_start_raises_RuntimeError_in_the_app()
    {
        using var response = await Client.GetAsync("/body-before-start");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("RuntimeError: ", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Sending_start_twice_raises_RuntimeError_in_the_app()
    {
        using var response = await Client.GetAsync("/double-start");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("RuntimeError: ", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Sending_after_the_response_completed_raises_RuntimeError_in_the_app()
    {
        var key = Keys.New();
        using var response = await Client.GetAsync($"/send-after-complete?key={key}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("done", await response.Content.ReadAsStringAsync());
        var line = await Mica.WaitForStdoutAsync($"AFTER COMPLETE {key} ");
        Assert.Contains("RuntimeError", line.Text);
    }

    [Fact]
    public async Task Exception_before_start_gives_500_and_logs_the_traceback()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        using var response = await Client.GetAsync($"/raise-before-start?key={key}");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var message = await Mica.WaitForStderrAsync($"ValueError: boom-before-start-{key}", after: mark);
        var traceback = Mica.Lines.Where(l => l.Source == Output.Stderr && l.Index > mark && l.Index < message.Index)
            .FirstOrDefault(l => l.Text.Contains("Traceback (most recent call last)", StringComparison.Ordinal));
        Assert.True(traceback is not null, "no traceback logged before the exception line\n" + Mica.Dump(40));
        Assert.Contains(Mica.Lines, l => l.Index > mark && l.Index < message.Index && l.Text.Contains("raise_before_start", StringComparison.Ordinal));
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Exception_after_start_aborts_the_connection()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/raise-after-start?key={key}"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.True(head.IsChunked);
        Assert.Equal("partial\n"u8.ToArray(), await connection.ReadChunkAsync());
        // No terminating chunk: the response must end by the connection closing (or being reset).
        var ex = await Record.ExceptionAsync(connection.ReadChunkAsync);
        Assert.True(ex is EndOfStreamException or IOException, $"expected the connection to be aborted, got {ex?.GetType().Name ?? "a complete chunk"}: {ex?.Message}");
        await Mica.WaitForStderrAsync($"ValueError: boom-after-start-{key}", after: mark);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Exception_after_start_is_an_error_for_HttpClient()
    {
        var key = Keys.New();
        using var client = Mica.CreateClient();
        using var response = await client.GetAsync($"/raise-after-start?key={key}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var ex = await Record.ExceptionAsync(() => response.Content.ReadAsStringAsync());
        Assert.True(ex is HttpRequestException or IOException, $"an incomplete response must fail to read, got {ex?.GetType().Name ?? "no error"}");
    }

    [Fact]
    public async Task Returning_without_a_response_gives_500()
    {
        var mark = Mica.Mark();
        using var response = await Client.GetAsync("/return-without-response");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        await Mica.WaitForStderrAsync("returned without completing response", after: mark);
        await AssertStillServingAsync();
    }

    private async Task AssertStillServingAsync()
    {
        using var response = await Client.GetAsync("/status?code=200");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
