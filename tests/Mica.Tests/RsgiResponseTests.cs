using System.Net;
using System.Text;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The RSGI response methods: response_empty, response_str, response_bytes (status, headers as
/// given, body) and response_stream (chunks reaching the client one by one, back-pressure); HEAD.
/// </summary>
public sealed class RsgiResponseTests(RsgiAppServer fixture) : RsgiResponseTests<RsgiAppServer>(fixture);

public abstract class RsgiResponseTests<TFixture>(TFixture fixture) : ProtoServerTests<TFixture>(fixture) where TFixture : RsgiAppServer
{
    private Task<RawResponse> GetAsync(string target, string method = "GET") => Rsgi.RawAsync(Mica, Rsgi.Request(method, target), method);

    [Fact]
    public async Task Response_str_sends_the_text_as_UTF8_with_the_apps_headers()
    {
        var response = await GetAsync("/str");
        Assert.Equal(200, response.Status);
        Assert.Equal("text/plain; charset=utf-8", response.Header("content-type"));
        Assert.Equal(Encoding.UTF8.GetBytes("héllo wörld ✓"), response.Body);
        Assert.Equal("17", response.Header("content-length"));
    }

    [Fact]
    public async Task Response_str_defaults_to_200_and_no_headers()
    {
        var response = await GetAsync("/str-defaults");
        Assert.Equal(200, response.Status);
        Assert.Equal("defaults", response.BodyText);
        Assert.Null(response.Header("content-type"));   // as Granian: no content-type added
    }

    [Fact]
    public async Task Response_bytes_sends_status_every_header_and_the_exact_bytes()
    {
        var response = await GetAsync("/bytes");
        Assert.Equal(201, response.Status);
        Assert.Equal(["one", "two"], response.HeaderValues("x-multi"));
        Assert.Equal("Value", response.Header("x-upper"));
        Assert.Equal("application/octet-stream", response.Header("content-type"));
        Assert.Equal([0, 1, .. "binary"u8.ToArray(), 0xFF], response.Body);
        Assert.Equal("9", response.Header("content-length"));
    }

    [Fact]
    public async Task A_non_ASCII_response_header_value_is_sent_as_UTF8()
    {
        var response = await GetAsync("/bytes");
        // RawConnection reads the head as latin-1: decode the value's bytes back as UTF-8.
        var value = response.Header("x-utf8")!;
        Assert.Equal("café", Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(value)));
    }

    [Fact]
    public async Task Response_bytes_takes_a_bytearray()
    {
        var response = await GetAsync("/bytearray");
        Assert.Equal(200, response.Status);
        Assert.Equal("from a bytearray", response.BodyText);
    }

    [Fact]
    public async Task Response_empty_is_an_empty_body_with_the_apps_status_and_headers()
    {
        var response = await GetAsync("/empty?status=200");
        Assert.Equal(200, response.Status);
        Assert.Equal("empty", response.Header("x-kind"));
        Assert.Equal("0", response.Header("content-length"));
        Assert.Empty(response.Body);
    }

    [Theory]
    [InlineData(204)]
    [InlineData(304)]
    public async Task Response_empty_204_and_304_have_no_body(int status)
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/empty?status={status}"));
        var response = await connection.ReadResponseAsync();
        Assert.Equal(status, response.Status);
        Assert.Equal("empty", response.Header("x-kind"));
        // Any body bytes would be read as the next status line.
        await connection.SendAsync(RawConnection.Get("/str"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal((200, "héllo wörld ✓"), (next.Status, next.BodyText));
    }

    [Fact]
    public async Task Response_stream_sends_bytes_and_str_chunks_chunked()
    {
        // As Granian's /stream: three sends of "test" (here bytes, str, bytes).
        var response = await GetAsync("/stream");
        Assert.Equal(200, response.Status);
        Assert.True(response.IsChunked, "a streamed response without a length is chunked over HTTP/1.1");
        Assert.Equal("testtesttest", response.BodyText);

        using var client = Clients.Http11(Server.Base);
        Assert.Equal("testtesttest", await client.GetStringAsync("/stream"));
    }

    [Fact]
    public async Task Each_streamed_chunk_reaches_the_client_before_the_app_sends_the_next()
    {
        // The app sends chunk I, then waits for /release before chunk I+1: the client can only see
        // chunk I if it was sent on its own, not buffered until the end of the response.
        var key = Keys.New();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/gated?key={key}&n=4", "Connection: close"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal($"chunk {i}\n", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
            if (i < 3)
            {
                var released = await GetAsync($"/release?key={key}");
                Assert.Equal("released", released.BodyText);
            }
        }
        Assert.Empty(await connection.ReadChunkAsync());   // the last chunk: the app returned
    }

    [Fact]
    public async Task Each_streamed_chunk_reaches_an_HTTP2_client_before_the_app_sends_the_next()
    {
        var key = Keys.New();
        using var client = Clients.Http2(Server.Base);
        using var response = await client.GetAsync($"/gated?key={key}&n=3", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, response.Version);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        for (var i = 0; i < 3; i++)
        {
            var expected = $"chunk {i}\n";
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await body.ReadExactlyAsync(buffer.AsMemory(0, expected.Length), cts.Token);
            Assert.Equal(expected, Encoding.ASCII.GetString(buffer, 0, expected.Length));
            if (i < 2) Assert.Equal("released", await client.GetStringAsync($"/release?key={key}"));
        }
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            Assert.Equal(0, await body.ReadAsync(buffer, cts.Token));
    }

    [Fact]
    public async Task Stream_sends_wait_for_the_client_to_read()
    {
        // 256 MiB in 64 KiB sends to a client that reads nothing: with back-pressure the app's sends
        // stall after what the buffers hold; without, they would all complete at once.
        const int n = 4096, size = 64 * 1024;
        var key = Keys.New();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/push?key={key}&n={n}&size={size}", "Connection: close"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);

        async Task<(int Sent, bool Done)> ProgressAsync()
        {
            var progress = Json.Parse((await GetAsync($"/progress?key={key}")).Body);
            return (progress.Int("sent"), progress.Bool("done"));
        }

        // Stalled: the count stays the same over 10 polls 100 ms apart (bounded: 20 s in all).
        var (last, done) = await ProgressAsync();
        var steady = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (steady < 10 && !done)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the sends never stalled: {last} of {n} done");
            await Task.Delay(100);
            var (sent, isDone) = await ProgressAsync();
            steady = sent == last ? steady + 1 : 0;
            (last, done) = (sent, isDone);
        }
        Assert.False(done, "all 256 MiB were 'sent' to a client that read nothing: no back-pressure");
        Assert.True((long)last * size <= 64L * 1024 * 1024, $"{last} sends of 64 KiB completed while the client read nothing");

        // Reading resumes the app, to the end.
        var total = (await connection.ReadBodyAsync(head)).LongLength;
        Assert.Equal((long)n * size, total);
        Assert.Equal((n, true), await ProgressAsync());
    }

    [Fact]
    public async Task Head_on_response_str_sends_the_headers_and_no_body()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("HEAD /str HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal("text/plain; charset=utf-8", head.Header("content-type"));
        // Any body bytes would be read as the next status line.
        await connection.SendAsync(RawConnection.Get("/bytearray"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal((200, "from a bytearray"), (next.Status, next.BodyText));
    }

    [Fact]
    public async Task Head_on_response_str_has_the_content_length_GET_would_have()
    {
        var head = await GetAsync("/str", "HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal("17", head.Header("content-length"));
        Assert.Empty(head.Body);
    }

    [Fact]
    public async Task Head_on_a_stream_sends_no_body()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("HEAD /stream HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        await connection.SendAsync(RawConnection.Get("/bytearray"));
        Assert.Equal("from a bytearray", (await connection.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task Responses_over_HTTP2()
    {
        using var client = Clients.Http2(Server.Base);
        using var str = await client.GetAsync("/str");
        Assert.Equal(HttpVersion.Version20, str.Version);
        Assert.Equal("héllo wörld ✓", await str.Content.ReadAsStringAsync());
        using var bytes = await client.GetAsync("/bytes");
        Assert.Equal(HttpStatusCode.Created, bytes.StatusCode);
        Assert.Equal(["one", "two"], bytes.Headers.GetValues("x-multi"));
        Assert.Equal([0, 1, .. "binary"u8.ToArray(), 0xFF], await bytes.Content.ReadAsByteArrayAsync());
        Assert.Equal("testtesttest", await client.GetStringAsync("/stream"));
        using var empty = await client.GetAsync("/empty?status=202");
        Assert.Equal(HttpStatusCode.Accepted, empty.StatusCode);
        Assert.Equal("empty", empty.Headers.GetValues("x-kind").Single());
    }
}
