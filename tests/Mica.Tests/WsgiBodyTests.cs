using System.Net;
using System.Text;
using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>wsgi.input: every read method, on Content-Length and chunked bodies, streamed (wsgi_app.py /input, /upload-sha).</summary>
public sealed class WsgiBodyTests(WsgiServer server) : ServerTests<WsgiServer>(server)
{
    private const int MiB = 1024 * 1024;

    /// <summary>POSTs <paramref name="body"/> to /input?op=OP&amp;n=N, with Content-Length or chunked (split in 3-byte chunks, so lines span chunks).</summary>
    private async Task<(string[] Pieces, string Remainder)> InputAsync(string op, string body, bool chunked, int n = 0)
    {
        var bytes = Encoding.Latin1.GetBytes(body);
        var head = $"POST /input?op={op}&n={n} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n";
        string request;
        if (chunked)
        {
            var sb = new StringBuilder(head + "Transfer-Encoding: chunked\r\n\r\n");
            for (var i = 0; i < body.Length; i += 3)
            {
                var piece = body.Substring(i, Math.Min(3, body.Length - i));
                sb.Append($"{piece.Length:x}\r\n{piece}\r\n");
            }
            sb.Append("0\r\n\r\n");
            request = sb.ToString();
        }
        else request = head + $"Content-Length: {bytes.Length}\r\n\r\n" + body;
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(request);
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"op {op}: status {response.Status}: {response.BodyText}\n{Mica.Dump(30)}");
        var result = Json.Parse(response.Body);
        Assert.Equal(["bytes"], result.GetProperty("types").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal("bytes", result.Str("rest_type"));
        return ([.. result.GetProperty("pieces").EnumerateArray().Select(p => p.GetString()!)], result.Str("rest"));
    }

    private const string Lines = "line1\nline2\n\nlast";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Read_n_returns_at_most_n_bytes_then_empty(bool chunked)
    {
        const string body = "hello world, this is a body of some length";
        var (pieces, rest) = await InputAsync("read_n", body, chunked, n: 5);
        Assert.Equal("", pieces[^1]);
        Assert.All(pieces, p => Assert.True(p.Length <= 5, $"read(5) returned {p.Length} bytes: '{p}'"));
        Assert.DoesNotContain("", pieces[..^1]);
        Assert.Equal(body, string.Concat(pieces));
        Assert.Equal("", rest);
    }

    /// <remarks>
    /// wsgi.input behaves like a file (PEP 3333): read(n) blocks until it has n bytes or the body ends.
    /// A shorter read before the end is taken for a client disconnect by werkzeug's LimitedStream
    /// (Flask answers 400), so it matters when the body arrives in pieces.
    /// </remarks>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Read_n_returns_n_bytes_until_the_end_when_the_body_arrives_in_pieces(bool chunked)
    {
        var key = Keys.New();
        var body = new string('x', 10_000);
        int[] pieces = [300, 2500, 7, 7193];
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /input?op=read_n&n=1000&announce={key} HTTP/1.1\r\nHost: localhost\r\n"
                                   + (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : $"Content-Length: {body.Length}\r\n\r\n"));
        await Mica.WaitForStdoutAsync($"READING {key}");   // the app is reading: each piece arrives on its own
        var offset = 0;
        foreach (var size in pieces)
        {
            var piece = body.Substring(offset, size);
            await connection.SendAsync(chunked ? $"{size:x}\r\n{piece}\r\n" : piece);
            offset += size;
            await Task.Delay(50);
        }
        if (chunked) await connection.SendAsync("0\r\n\r\n");
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        var sizes = Json.Parse(response.Body).GetProperty("pieces").EnumerateArray().Select(p => p.GetString()!.Length).ToArray();
        Assert.True(sizes.SequenceEqual([.. Enumerable.Repeat(1000, 10), 0]),
            $"read(1000) over a 10000-byte body sent in pieces of {string.Join(", ", pieces)} returned {string.Join(", ", sizes)} bytes (short reads before the end)");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Readline_returns_whole_lines_when_the_body_arrives_in_pieces(bool chunked)
    {
        string[] pieces = ["line o", "ne\nline", " two\nab", "c"];
        var body = string.Concat(pieces);
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /input?op=readline HTTP/1.1\r\nHost: localhost\r\n"
                                   + (chunked ? "Transfer-Encoding: chunked\r\n\r\n" : $"Content-Length: {body.Length}\r\n\r\n"));
        foreach (var piece in pieces)
        {
            await Task.Delay(50);
            await connection.SendAsync(chunked ? $"{piece.Length:x}\r\n{piece}\r\n" : piece);
        }
        if (chunked) await connection.SendAsync("0\r\n\r\n");
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        Assert.Equal(["line one\n", "line two\n", "abc", ""], Json.Parse(response.Body).GetProperty("pieces").EnumerateArray().Select(p => p.GetString()));
    }

    [Theory]
    [InlineData("read", false)]
    [InlineData("read", true)]
    [InlineData("read_minus1", false)]
    [InlineData("read_minus1", true)]
    [InlineData("read_none", false)]
    [InlineData("read_none", true)]
    public async Task Read_without_a_size_returns_the_whole_body(string op, bool chunked)
    {
        const string body = "the whole body\nin one read\n";
        var (pieces, rest) = await InputAsync(op, body, chunked);
        Assert.Equal([body], pieces);
        Assert.Equal("", rest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Readline_returns_one_line_at_a_time(bool chunked)
    {
        var (pieces, rest) = await InputAsync("readline", Lines, chunked);
        Assert.Equal(["line1\n", "line2\n", "\n", "last", ""], pieces);
        Assert.Equal("", rest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Readline_with_a_limit_returns_at_most_limit_bytes(bool chunked)
    {
        var (pieces, rest) = await InputAsync("readline_limit", "abcdefg\ngh\n", chunked, n: 3);
        Assert.Equal(["abc", "def", "g\n", "gh\n", ""], pieces);
        Assert.Equal("", rest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Readlines_returns_every_line(bool chunked)
    {
        var (pieces, rest) = await InputAsync("readlines", Lines, chunked);
        Assert.Equal(["line1\n", "line2\n", "\n", "last"], pieces);
        Assert.Equal("", rest);
    }

    /// <remarks>PEP 3333 lets a server ignore the hint; honoured, it stops once the lines read reach it.</remarks>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Readlines_with_a_hint_returns_whole_lines_and_leaves_the_rest(bool chunked)
    {
        string[] all = ["aaaa\n", "bbbb\n", "cccc\n", "dddd\n"];
        var (pieces, rest) = await InputAsync("readlines_hint", string.Concat(all), chunked, n: 6);
        Assert.True(pieces.Length >= 2, $"readlines(6) returned {pieces.Length} lines: fewer than reach the hint");
        Assert.Equal(all[..pieces.Length], pieces);
        Assert.Equal(string.Concat(all[pieces.Length..]), rest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Iteration_yields_lines(bool chunked)
    {
        var (pieces, rest) = await InputAsync("iter", Lines, chunked);
        Assert.Equal(["line1\n", "line2\n", "\n", "last"], pieces);
        Assert.Equal("", rest);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Mixed_read_and_readline_keep_their_place(bool chunked)
    {
        var (pieces, rest) = await InputAsync("mixed", "abcdef\nghijklmn\n", chunked);
        Assert.Equal(["abc", "def\n", "ghij", "klmn\n"], pieces);
        Assert.Equal("", rest);
    }

    [Fact]
    public async Task Empty_body_reads_as_empty()
    {
        var (pieces, rest) = await InputAsync("read", "", chunked: false);
        Assert.Equal([""], pieces);
        Assert.Equal("", rest);
    }

    [Fact]
    public async Task Get_without_a_body_reads_as_empty_at_once()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        connection.Timeout = TimeSpan.FromSeconds(5);
        await connection.SendAsync(RawConnection.Get("/input?op=read"));
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        Assert.Equal([""], Json.Parse(response.Body).GetProperty("pieces").EnumerateArray().Select(p => p.GetString()));
    }

    [Fact]
    public async Task Expect_100_continue_is_answered_and_the_body_read()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("POST /input?op=read HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        var interim = await connection.ReadHeadAsync();
        Assert.Equal(100, interim.Status);
        await connection.SendAsync("hello");
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        Assert.Equal(["hello"], Json.Parse(response.Body).GetProperty("pieces").EnumerateArray().Select(p => p.GetString()));
    }

    [Fact]
    public async Task Body_can_be_read_from_the_response_generator_while_streaming_back()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("POST /echo-stream?piece=5 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345");
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        // The first half comes back before the second half is sent.
        Assert.Equal("12345", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        await connection.SendAsync("67890");
        Assert.Equal("67890", Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
        Assert.Empty(await connection.ReadChunkAsync());
    }

    /// <summary>
    /// An app may answer without reading the body. The connection then stays usable (the server
    /// drains the rest, as it does for ASGI) or the response says Connection: close.
    /// </summary>
    [Theory]
    [InlineData(10)]
    [InlineData(100_000)]
    public async Task Unread_request_body_keeps_the_connection_usable_or_says_close(int size)
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /ok HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n" + new string('x', size));
        var first = await connection.ReadResponseAsync();
        Assert.Equal(200, first.Status);
        if (first.Header("Connection")?.Contains("close", StringComparison.OrdinalIgnoreCase) == true) return;
        await connection.SendAsync(RawConnection.Get("/ok"));
        var ex = await Record.ExceptionAsync(async () =>
        {
            var second = await connection.ReadResponseAsync();
            Assert.Equal(200, second.Status);
        });
        Assert.True(ex is null, $"POST /ok with {size} unread body bytes answered without Connection: close, yet the next request "
                                + $"on the connection failed: {ex?.GetType().Name}: {ex?.Message}");
    }

    private async Task<JsonElement> UploadAsync(HttpContent content, bool chunked = false)
    {
        using var client = Mica.CreateClient(TimeSpan.FromSeconds(60));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/upload-sha?piece=65536") { Content = content };
        if (chunked) request.Headers.TransferEncodingChunked = true;
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}\n{Mica.Dump(30)}");
        return Json.Parse(text);
    }

    [Fact]
    public async Task Twenty_MiB_upload_read_in_64_KiB_pieces_is_streamed_not_buffered()
    {
        // Warm up the pools of both sides with a smaller upload first.
        var warm = TestData.RandomBytes(4 * MiB, 9);
        Assert.Equal(TestData.Sha256(warm), (await UploadAsync(new ByteArrayContent(warm))).Str("sha256"));

        var data = TestData.RandomBytes(20 * MiB, 2);
        var before = Wsgi.RssKb(Mica.WorkerPid);
        var result = await UploadAsync(new ByteArrayContent(data));
        var after = Wsgi.RssKb(Mica.WorkerPid);
        Assert.Equal(data.Length, result.Long("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Int("max_piece") <= 65536, $"read(65536) returned {result.Int("max_piece")} bytes");
        var peakGrowth = result.Long("rss_max_kb") - Math.Min(before, result.Long("rss_before_kb"));
        Assert.True(peakGrowth < 15 * 1024,
            $"the worker's RSS grew by {peakGrowth / 1024.0:0.0} MiB while reading a 20 MiB body (before {before} KiB, peak {result.Long("rss_max_kb")} KiB, after {after} KiB): buffered, not streamed");
        Assert.True(after - before < 15 * 1024, $"RSS before {before} KiB, after {after} KiB");
    }

    /// <summary>Request bodies are unlimited by default (as in Granian): Kestrel's own 30 MB limit does not apply.</summary>
    [Fact]
    public async Task Forty_MiB_upload_is_taken_whole_by_default()
    {
        var data = TestData.RandomBytes(40 * MiB, 41);
        var result = await UploadAsync(new ByteArrayContent(data));
        Assert.Equal(data.Length, result.Long("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
    }

    /// <summary>Content of unknown length: HttpClient sends it with Transfer-Encoding: chunked.</summary>
    private sealed class UnknownLengthContent(byte[] data, int piece) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var offset = 0; offset < data.Length; offset += piece)
            {
                await stream.WriteAsync(data.AsMemory(offset, Math.Min(piece, data.Length - offset)));
                await stream.FlushAsync();
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task Chunked_upload_of_4_MiB_arrives_whole()
    {
        var data = TestData.RandomBytes(4 * MiB, 3);
        var result = await UploadAsync(new UnknownLengthContent(data, 50_000), chunked: true);
        Assert.Equal(data.Length, result.Long("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Int("max_piece") <= 65536, result.ToString());
    }

    [Fact]
    public async Task Body_is_read_by_the_app_before_the_upload_finishes()
    {
        var key = Keys.New();
        var data = TestData.RandomBytes(MiB, 4);
        const int firstPart = 128 * 1024;
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /upload-sha?piece=65536&announce={key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {data.Length}\r\n\r\n");
        await connection.SendAsync(data.AsMemory(0, firstPart));
        // Only part of the body has been sent: the app can read it only if wsgi.input streams.
        var line = await Mica.WaitForStdoutAsync($"FIRST READ {key} ");
        Assert.InRange(int.Parse(line.Text.Split(' ')[^1]), 1, 65536);
        await connection.SendAsync(data.AsMemory(firstPart));
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        var result = Json.Parse(response.Body);
        Assert.Equal(data.Length, result.Long("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
    }
}
