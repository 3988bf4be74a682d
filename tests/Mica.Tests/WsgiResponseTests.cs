using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>start_response, write(), the response iterable (sized, streamed, empty chunks, HEAD) and close() (wsgi_app.py).</summary>
public sealed class WsgiResponseTests(WsgiServer server) : ServerTests<WsgiServer>(server)
{
    private async Task<RawResponse> RawAsync(string request, string method = "GET")
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(request);
        return await connection.ReadResponseAsync(method);
    }

    private Task<RawResponse> GetRawAsync(string target) => RawAsync(RawConnection.Get(target));

    // ------------------------------------------------------------------ status and headers

    [Theory]
    [InlineData("201 Made It", 201, "Made It")]
    [InlineData("299 Custom Thing", 299, "Custom Thing")]
    [InlineData("404 Nowhere To Be Found", 404, "Nowhere To Be Found")]
    public async Task Status_and_reason_phrase_are_the_apps(string status, int code, string reason)
    {
        var response = await GetRawAsync("/status?s=" + Uri.EscapeDataString(status));
        Assert.Equal(code, response.Status);
        Assert.Equal(reason, response.Reason);
        Assert.Equal("status " + status, response.BodyText);
    }

    [Fact]
    public async Task Headers_are_sent_as_given_including_repeats()
    {
        using var response = await Client.GetAsync("/headers-out");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(["a=1; Path=/", "b=2; Path=/"], response.Headers.GetValues("Set-Cookie"));
        Assert.Equal("Value With Spaces", Assert.Single(response.Headers.GetValues("X-Custom")));
        Assert.Equal("cookies", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Latin1_header_values_are_sent_as_latin1_bytes()
    {
        var response = await GetRawAsync("/headers-latin1");
        Assert.True(response.Status == 200, $"a header value 'café über' (latin-1, as PEP 3333 allows) gave {response.Status} {response.BodyText}");
        Assert.Equal("café über", response.Header("X-Latin"));   // RawConnection reads the head as latin-1
        Assert.Equal("latin1", response.BodyText);
    }

    [Theory]
    [InlineData("204 No Content")]
    [InlineData("304 Not Modified")]
    public async Task No_body_is_sent_for_204_and_304(string status)
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/no-content?s=" + Uri.EscapeDataString(status)));
        var response = await connection.ReadResponseAsync();
        Assert.Equal(int.Parse(status[..3]), response.Status);
        Assert.Equal("no-content", response.Header("X-Kind"));
        // Body bytes after the head would be read as the next status line.
        await connection.SendAsync(RawConnection.Get("/ok"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal(200, next.Status);
        Assert.Equal("ok", next.BodyText);
    }

    // ------------------------------------------------------------------ large bodies

    [Theory]
    [InlineData("list", 1)]
    [InlineData("list", 3)]
    [InlineData("gen", 3)]
    public Task Large_bodies_arrive_whole(string form, int pieces) =>
        TestData.AssertLargeBodyAsync(Client, $"chunks={pieces}&as={form}");

    [Fact]
    public async Task A_large_body_is_let_go_of_even_when_no_request_follows()
    {
        // The reference that kept it alive while Kestrel copied it out is dropped under the GIL,
        // by a WSGI thread's next request or, in an idle worker, by a timer.
        var key = Keys.New();
        var mark = Mica.Mark();
        Assert.Equal(1 << 20, (await Client.GetByteArrayAsync($"/held?key={key}")).Length);
        await Mica.WaitForStdoutAsync($"held-released-{key}", TimeSpan.FromSeconds(10), after: mark);
    }

    [Fact]
    public async Task Second_start_response_without_exc_info_is_a_500()
    {
        var response = await GetRawAsync("/start-twice");
        Assert.Equal(500, response.Status);
        Assert.DoesNotContain("accepted", response.BodyText);
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Start_response_with_exc_info_before_sending_replaces_status_and_headers()
    {
        var response = await GetRawAsync("/exc-info-before");
        Assert.Equal(500, response.Status);
        Assert.Equal("Oops", response.Reason);
        Assert.Equal("oops body", response.BodyText);
        Assert.Equal("2", response.Header("X-Second"));
        Assert.Null(response.Header("X-First"));
    }

    [Fact]
    public async Task Start_response_with_exc_info_after_sending_reraises_and_aborts()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        await using (var connection = await RawConnection.ConnectAsync(Mica))
        {
            await connection.SendAsync(RawConnection.Get($"/exc-info-after?key={key}"));
            var head = await connection.ReadHeadAsync();
            Assert.Equal(200, head.Status);
            Assert.True(head.IsChunked, "transfer-encoding: " + head.Header("transfer-encoding"));
            Assert.Equal("first\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
            var ex = await Record.ExceptionAsync(connection.ReadChunkAsync);
            Assert.True(ex is EndOfStreamException or IOException,
                $"expected the response to be aborted, got {ex?.GetType().Name ?? "a complete chunk"}: {ex?.Message}");
        }
        await Mica.WaitForStderrAsync($"boom-exc-info-after-{key}", after: mark);
        var stats = await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("closed") >= 1, "close() of the aborted response");
        Assert.Equal(0, stats.Get("not_reraised"));
        Assert.Equal(1, stats.Get("closed"));
        await Wsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task Empty_first_chunk_does_not_send_the_headers()
    {
        // start_response(exc_info) after an empty chunk may still replace the status: nothing was sent.
        var response = await GetRawAsync("/empty-then-replace");
        Assert.Equal(503, response.Status);
        Assert.Equal("Replaced", response.Reason);
        Assert.Equal("replaced", response.BodyText);
    }

    // ------------------------------------------------------------------ write()

    [Fact]
    public async Task Write_data_precedes_the_returned_list()
    {
        using var response = await Client.GetAsync("/write");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("one;two;three;four", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Write_data_precedes_a_returned_generator()
    {
        using var response = await Client.GetAsync("/write-gen");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("w1;g1;g2", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Write_alone_with_an_empty_iterable_is_the_body()
    {
        var response = await GetRawAsync("/write-only?n=3");
        Assert.Equal(200, response.Status);
        Assert.Equal("line-0\nline-1\nline-2\n", response.BodyText);
    }

    // ------------------------------------------------------------------ body framing

    [Fact]
    public async Task List_body_is_sent_with_a_content_length()
    {
        var response = await GetRawAsync("/list?n=4");
        Assert.Equal(200, response.Status);
        Assert.False(response.IsChunked, "a list body was sent chunked");
        Assert.Equal("part0;part1;part2;part3;".Length.ToString(), response.Header("Content-Length"));
        Assert.Equal("part0;part1;part2;part3;", response.BodyText);
    }

    [Fact]
    public async Task Tuple_body_is_sent_with_a_content_length()
    {
        var response = await GetRawAsync("/tuple");
        Assert.Equal(200, response.Status);
        Assert.False(response.IsChunked, "a tuple body was sent chunked");
        Assert.Equal("5", response.Header("Content-Length"));
        Assert.Equal("tuple", response.BodyText);
    }

    [Fact]
    public async Task App_content_length_is_kept()
    {
        var response = await GetRawAsync("/list-cl");
        Assert.Equal(200, response.Status);
        Assert.Equal(["11"], response.HeaderValues("Content-Length"));
        Assert.False(response.IsChunked);
        Assert.Equal("hello world", response.BodyText);
    }

    [Fact]
    public async Task Generator_body_is_chunked_without_a_content_length()
    {
        var response = await GetRawAsync("/gen?n=5");
        Assert.Equal(200, response.Status);
        Assert.True(response.IsChunked, "transfer-encoding: " + response.Header("transfer-encoding"));
        Assert.Null(response.Header("Content-Length"));
        Assert.Equal("chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n", response.BodyText);
    }

    [Fact]
    public async Task Generator_chunks_are_flushed_as_they_are_produced()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        var clock = Stopwatch.StartNew();
        await connection.SendAsync(RawConnection.Get("/gen-timed?s=0.8"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.True(head.IsChunked);
        Assert.Equal("first\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        var firstAt = clock.Elapsed;
        Assert.Equal("second\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        var secondAt = clock.Elapsed;
        Assert.Empty(await connection.ReadChunkAsync());
        // The generator sleeps 0.8 s between its chunks; held back, the first would arrive with the second.
        Assert.True(secondAt - firstAt >= TimeSpan.FromSeconds(0.4),
            $"first chunk at {firstAt.TotalMilliseconds:0} ms, second at {secondAt.TotalMilliseconds:0} ms: the first was held back until the second was produced");
    }

    [Fact]
    public async Task First_chunk_reaches_an_HttpClient_while_the_generator_waits()
    {
        var key = Keys.New();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var client = Mica.CreateClient();
        using var response = await client.GetAsync($"/gen-until?key={key}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
        // The generator does not go on until /release is requested: "first" must arrive before that.
        var buffer = new byte[64];
        var text = new StringBuilder();
        using (var firstWait = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            while (!text.ToString().Contains('\n'))
            {
                var n = await body.ReadAsync(buffer, firstWait.Token);
                if (n == 0) break;
                text.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }
        Assert.Equal("first\n", text.ToString());
        using (var release = await Client.GetAsync($"/release?key={key}", cts.Token))
            Assert.Equal(HttpStatusCode.OK, release.StatusCode);
        Assert.Equal("second\n", await new StreamReader(body).ReadToEndAsync(cts.Token));
    }

    [Fact]
    public async Task Empty_chunks_are_skipped()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/gen-empty"));
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        // An empty chunk on the wire would have ended the body early.
        Assert.Equal("ab", response.BodyText);
        await connection.SendAsync(RawConnection.Get("/ok"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal(200, next.Status);
        Assert.Equal("ok", next.BodyText);
    }

    [Theory]
    [InlineData("/list?n=3")]
    [InlineData("/gen?n=3")]
    [InlineData("/write-only?n=3")]
    public async Task Head_gets_the_headers_and_no_body(string target)
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"HEAD {target} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal("text/plain", head.Header("Content-Type"));
        // Any body bytes sent after the HEAD response would be read as the next status line.
        await connection.SendAsync(RawConnection.Get("/ok"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal(200, next.Status);
        Assert.Equal("ok", next.BodyText);
    }

    [Fact]
    public async Task Pipelined_requests_get_their_responses_in_order()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/gen?n=2") + RawConnection.Get("/list?n=2") + RawConnection.Get("/status?s=201%20Made%20It"));
        var first = await connection.ReadResponseAsync();
        var second = await connection.ReadResponseAsync();
        var third = await connection.ReadResponseAsync();
        Assert.Equal("chunk-0\nchunk-1\n", first.BodyText);
        Assert.Equal("part0;part1;", second.BodyText);
        Assert.Equal(201, third.Status);
    }

    [Fact]
    public async Task Head_keeps_the_apps_content_length()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("HEAD /list-cl HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal("11", head.Header("Content-Length"));
        await connection.SendAsync(RawConnection.Get("/ok"));
        Assert.Equal("ok", (await connection.ReadResponseAsync()).BodyText);
    }

    // ------------------------------------------------------------------ close()

    [Theory]
    [InlineData("gen", "a\nb\nc\n")]
    [InlineData("list", "x\ny\n")]
    public async Task Close_is_called_once_after_a_complete_response(string kind, string body)
    {
        var key = Keys.New();
        using (var response = await Client.GetAsync($"/closing?kind={kind}&key={key}"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(body, await response.Content.ReadAsStringAsync());
        }
        await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("closed") >= 1, "close() called");
        await Task.Delay(200);   // a second call would come right after the first
        Assert.Equal(1, (await Wsgi.StatsAsync(Client, key)).Get("closed"));
    }

    [Fact]
    public async Task Close_is_called_once_for_a_head_request()
    {
        var key = Keys.New();
        var head = await RawAsync($"HEAD /closing?kind=gen&key={key} HTTP/1.1\r\nHost: localhost\r\n\r\n", "HEAD");
        Assert.Equal(200, head.Status);
        await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("closed") >= 1, "close() called");
        await Task.Delay(200);
        Assert.Equal(1, (await Wsgi.StatsAsync(Client, key)).Get("closed"));
    }

    [Fact]
    public async Task Close_is_called_once_when_the_iterable_raises()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        await using (var connection = await RawConnection.ConnectAsync(Mica))
        {
            await connection.SendAsync(RawConnection.Get($"/closing?kind=raise&key={key}"));
            var head = await connection.ReadHeadAsync();
            Assert.Equal(200, head.Status);
            Assert.Equal("partial\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
            var ex = await Record.ExceptionAsync(connection.ReadChunkAsync);
            Assert.True(ex is EndOfStreamException or IOException, $"expected an aborted response, got {ex?.GetType().Name ?? "a complete chunk"}");
        }
        await Mica.WaitForStderrAsync($"boom-closing-{key}", after: mark);
        await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("closed") >= 1, "close() called");
        await Task.Delay(200);
        Assert.Equal(1, (await Wsgi.StatsAsync(Client, key)).Get("closed"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Client_disconnect_stops_a_slow_stream_and_calls_close(bool reset)
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/closing?kind=slow&key={key}"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.Equal("tick\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        if (reset) connection.Abort();
        else connection.Dispose();

        var stats = await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("closed") >= 1,
            "close() after the client went away from a 30 s stream", TimeSpan.FromSeconds(5));
        var produced = stats.Get("produced");
        Assert.True(produced < 100, $"{produced} chunks produced after the client left");
        await Task.Delay(500);   // 5 more chunks' worth of time
        stats = await Wsgi.StatsAsync(Client, key);
        Assert.Equal(1, stats.Get("closed"));
        Assert.True(stats.Get("produced") <= produced + 1, $"the generator kept running after close(): {produced} then {stats.Get("produced")} chunks");
        await Wsgi.AssertStillServingAsync(Mica);
    }
}
