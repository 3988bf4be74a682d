using System.Diagnostics;
using System.Net;
using System.Text;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>http.response.body with more_body=True reaches the client as it is sent (raw_app.py).</summary>
public sealed class StreamingResponseTests(RawAppServer server) : ServerTests<RawAppServer>(server)
{
    /// <summary>Reads from <paramref name="stream"/> until the text read so far contains <paramref name="expected"/>.</summary>
    private static async Task<string> ReadUntilAsync(System.IO.Stream stream, string expected, StringBuilder sofar, CancellationToken ct)
    {
        var buffer = new byte[4096];
        while (!sofar.ToString().Contains(expected, StringComparison.Ordinal))
        {
            var n = await stream.ReadAsync(buffer, ct);
            if (n == 0) break;
            sofar.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return sofar.ToString();
    }

    [Fact]
    public async Task First_chunk_reaches_the_client_while_the_app_is_still_running()
    {
        var key = Keys.New();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var client = Mica.CreateClient();
        using var response = await client.GetAsync($"/stream-until?key={key}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.TransferEncodingChunked, "a streamed response without content-length is chunked");
        Assert.Null(response.Content.Headers.ContentLength);
        await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
        var text = new StringBuilder();

        // The app will not finish until /release is requested: "first" must come before that.
        using var firstWait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.Equal("first\n", await ReadUntilAsync(body, "first\n", text, firstWait.Token));

        using (var release = await Client.GetAsync($"/release?key={key}", cts.Token))
            Assert.Equal(HttpStatusCode.OK, release.StatusCode);
        var rest = await new StreamReader(body).ReadToEndAsync(cts.Token);
        Assert.Equal("first\nsecond\n", text + rest);
    }

    [Fact]
    public async Task First_chunk_arrives_well_before_the_end_of_a_timed_stream()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var clock = Stopwatch.StartNew();
        using var response = await Client.GetAsync("/stream-timed?s=1", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
        var text = new StringBuilder();
        await ReadUntilAsync(body, "first\n", text, cts.Token);
        var firstAt = clock.Elapsed;
        var rest = await new StreamReader(body).ReadToEndAsync(cts.Token);
        var endAt = clock.Elapsed;
        Assert.Equal("first\nsecond\n", text + rest);
        Assert.True(endAt - firstAt >= TimeSpan.FromSeconds(0.7),
            $"first chunk at {firstAt.TotalMilliseconds:0} ms, end at {endAt.TotalMilliseconds:0} ms: the first chunk was held back");
    }

    [Fact]
    public async Task Raw_stream_is_chunk_encoded_on_the_wire()
    {
        var key = Keys.New();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/stream-until?key={key}"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.True(head.IsChunked, "transfer-encoding: " + head.Header("transfer-encoding"));
        Assert.Equal("first\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        using (await Client.GetAsync($"/release?key={key}")) { }
        var rest = new StringBuilder();
        while (await connection.ReadChunkAsync() is { Length: > 0 } chunk) rest.Append(Encoding.ASCII.GetString(chunk));
        Assert.Equal("second\n", rest.ToString());
        // The connection is still usable after the terminating chunk.
        await connection.SendAsync(RawConnection.Get("/status?code=200"));
        Assert.Equal(200, (await connection.ReadResponseAsync()).Status);
    }

    [Fact]
    public async Task Response_headers_are_sent_as_given_including_repeats()
    {
        using var response = await Client.GetAsync("/headers-out");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new[] { "a=1; Path=/", "b=2; Path=/" }, response.Headers.GetValues("Set-Cookie"));
        Assert.Equal("Value With Spaces", Assert.Single(response.Headers.GetValues("X-Custom")));
        Assert.Equal("cookies", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public Task Large_bodies_arrive_whole_from_one_send_or_several(int chunks) =>
        TestData.AssertLargeBodyAsync(Client, $"chunks={chunks}");

    [Fact]
    public async Task Large_bodies_are_let_go_of_once_sent()
    {
        var bodies = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Client.GetByteArrayAsync("/held")));
        Assert.All(bodies, b => Assert.Equal(1 << 20, b.Length));
        // Each response held a reference to the app's bytes object while Kestrel copied it out.
        var deadline = Stopwatch.StartNew();
        long extra;
        while ((extra = await ExtraReferencesAsync()) != 0 && deadline.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(50);
        Assert.True(extra == 0, $"{extra} references to the sent body still held after {deadline.Elapsed.TotalSeconds:0.0} s");
    }

    private async Task<long> ExtraReferencesAsync()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(await Client.GetStringAsync("/held-refs"));
        return doc.RootElement.GetProperty("extra").GetInt64();
    }

    [Theory]
    [InlineData(201)]
    [InlineData(204)]
    [InlineData(404)]
    [InlineData(418)]
    [InlineData(503)]
    public async Task Status_code_is_sent_as_given(int code)
    {
        using var response = await Client.GetAsync($"/status?code={code}");
        Assert.Equal(code, (int)response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(code == 204 ? "" : $"status {code}", body);
    }
}

/// <summary>The client going away reaches the app as http.disconnect (raw_app.py).</summary>
public sealed class DisconnectTests(RawAppServer server) : ServerTests<RawAppServer>(server)
{
    private async Task AssertStillServingAsync()
    {
        using var response = await Client.GetAsync("/status?code=200");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Closing_the_connection_after_the_request_gives_http_disconnect()
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/wait-disconnect?key={key}"));
        await Mica.WaitForStdoutAsync($"WAITING {key}");
        connection.Dispose();
        var line = await Mica.WaitForStdoutAsync($"DISCONNECTED {key} ");
        Assert.EndsWith("http.disconnect", line.Text);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Resetting_the_connection_after_the_request_gives_http_disconnect()
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/wait-disconnect?key={key}"));
        await Mica.WaitForStdoutAsync($"WAITING {key}");
        connection.Abort();
        var line = await Mica.WaitForStdoutAsync($"DISCONNECTED {key} ");
        Assert.EndsWith("http.disconnect", line.Text);
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Closing_the_connection_mid_body_gives_http_disconnect()
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /body-disconnect?key={key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n");
        await connection.SendAsync(new byte[1000]);
        await Mica.WaitForStdoutAsync($"BODY PROGRESS {key} ");
        connection.Dispose();
        var line = await Mica.WaitForStdoutAsync($"BODY DISCONNECTED {key} ");
        Assert.Contains("after 1000 bytes", line.Text);
        Assert.DoesNotContain(Mica.StdoutLines, l => l.StartsWith($"BODY COMPLETE {key}", StringComparison.Ordinal));
        await AssertStillServingAsync();
    }

    [Fact]
    public async Task Closing_the_connection_during_a_streaming_response_is_seen_by_the_app()
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/stream-forever?key={key}"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.Equal("tick\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        connection.Dispose();
        var line = await Mica.WaitForStdoutAsync($"STREAM DISCONNECTED {key} ");
        Assert.EndsWith("True", line.Text);
        await AssertStillServingAsync();
    }
}
