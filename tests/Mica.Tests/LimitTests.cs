using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The request head limits (<c>--limit-request-line</c>, <c>--limit-request-fields</c>,
/// <c>--limit-request-fields-size</c>) and <c>--limit-request-body</c>, against wire_echo.py,
/// which says whether the app saw a request.
/// </summary>
public sealed class RequestLimitTests
{
    private static Task<MicaProcess> StartAsync(string iface, params string[] options) =>
        MicaProcess.StartAsync(iface == "wsgi" ? "wire_echo:wsgi" : "wire_echo:app", ["--interface", iface, .. options]);

    /// <summary>One request on a new connection: its response (the connection is closed after).</summary>
    private static async Task<RawResponse> SendAsync(MicaProcess mica, string request)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(request);
        return await connection.ReadResponseAsync();
    }

    private static string Get(string target, params string[] headers) => RawConnection.Get(target, [.. headers, "Connection: close"]);

    /// <summary>A request line of exactly <paramref name="length"/> bytes (CRLF not counted, as Kestrel counts).</summary>
    private static string TargetForLine(int length) => "/" + new string('a', length - "GET / HTTP/1.1".Length);

    [Fact]
    public async Task A_request_line_over_the_limit_gets_414_and_one_within_is_served()
    {
        await using var mica = await StartAsync("asgi", "--limit-request-line", "1024");
        var over = await SendAsync(mica, Get(TargetForLine(1100)));
        Assert.Equal(414, over.Status);
        Assert.Null(over.Header("x-echo"));
        Assert.Equal(200, (await SendAsync(mica, Get(TargetForLine(1000)))).Status);
    }

    [Fact]
    public async Task The_default_request_line_limit_is_8_KiB()
    {
        await using var mica = await StartAsync("asgi");
        Assert.Equal(200, (await SendAsync(mica, Get(TargetForLine(8000)))).Status);
        Assert.Equal(414, (await SendAsync(mica, Get(TargetForLine(8300)))).Status);
    }

    [Fact]
    public async Task Header_fields_over_the_count_get_431_and_as_many_as_the_limit_are_served()
    {
        await using var mica = await StartAsync("asgi", "--limit-request-fields", "10");
        // Host and Connection: close, plus these.
        var over = await SendAsync(mica, Get("/f", [.. Enumerable.Range(0, 9).Select(i => $"X-{i}: v")]));
        Assert.Equal(431, over.Status);
        Assert.Null(over.Header("x-echo"));
        Assert.Equal(200, (await SendAsync(mica, Get("/f", [.. Enumerable.Range(0, 8).Select(i => $"X-{i}: v")]))).Status);
    }

    [Fact]
    public async Task A_header_section_over_the_size_limit_gets_431_and_one_within_is_served()
    {
        await using var mica = await StartAsync("asgi", "--limit-request-fields-size", "2048");
        var over = await SendAsync(mica, Get("/s", "X-Big: " + new string('b', 2100)));
        Assert.Equal(431, over.Status);
        Assert.Null(over.Header("x-echo"));
        Assert.Equal(200, (await SendAsync(mica, Get("/s", "X-Big: " + new string('b', 1800)))).Status);
    }

    [Theory]
    [InlineData("asgi")]
    [InlineData("wsgi")]
    public async Task A_body_over_the_limit_gets_413_whether_its_length_is_declared_or_chunked(string iface)
    {
        await using var mica = await StartAsync(iface, "--limit-request-body", "1000");
        var body = new string('x', 1500);

        var declared = await SendAsync(mica, $"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: {body.Length}\r\n\r\n{body}");
        Assert.Equal(413, declared.Status);
        Assert.Null(declared.Header("x-echo"));

        // Chunked: the app is already reading when the body passes the limit.
        await using (var connection = await RawConnection.ConnectAsync(mica))
        {
            await connection.SendAsync("POST /b?announce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
            await mica.WaitForStdoutAsync("reading the body of POST /b?announce");
            await connection.SendAsync($"{body.Length:x}\r\n{body}\r\n0\r\n\r\n");
            var chunked = await connection.ReadResponseAsync();
            Assert.Equal(413, chunked.Status);
            Assert.Equal("close", chunked.Header("connection"));
            Assert.True(await connection.WaitClosedAsync(TimeSpan.FromSeconds(5)), "the connection stayed open after the 413");
        }

        var within = await SendAsync(mica, $"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{new string('y', 1000)}");
        Assert.Equal(200, within.Status);
        Assert.Equal("POST /b len=1000 cl=1000 te=-", within.Header("x-echo"));
        Assert.DoesNotContain(mica.Lines, l => l.Text.Contains("Traceback", StringComparison.Ordinal));
    }
}

/// <summary>
/// The timeouts: <c>--http1-header-read-timeout</c> against slow heads (slowloris),
/// <c>--timeout-keep-alive</c>, <c>--min-request-body-rate</c> and <c>--min-response-rate</c>.
/// </summary>
public sealed class TimeoutTests
{
    /// <summary>
    /// Sends <paramref name="everySecond"/> once a second until the server closes: what it sent
    /// before, or null if it had not closed within <paramref name="within"/>.
    /// </summary>
    private static async Task<byte[]?> TrickleUntilClosedAsync(RawConnection connection, byte[] everySecond, TimeSpan within)
    {
        var closed = connection.ReadUntilClosedAsync(within);
        while (!closed.IsCompleted)
        {
            try { await connection.SendAsync(everySecond); }
            catch (IOException) { break; }   // closed (reset) meanwhile
            await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(1)));
        }
        return await closed;
    }

    /// <summary>A byte a second of a header line that never ends: true if the server closed within <paramref name="within"/>.</summary>
    private static async Task<bool> TrickleHeaderUntilClosedAsync(RawConnection connection, TimeSpan within) =>
        await TrickleUntilClosedAsync(connection, "a"u8.ToArray(), within) is not null;

    [Theory]
    [InlineData("auto")]
    [InlineData("1")]
    public async Task A_head_trickling_in_a_byte_a_second_is_cut_off_at_the_header_read_timeout(string http)
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--http", http, "--http1-header-read-timeout", "2000"]);
        await using var connection = await RawConnection.ConnectAsync(mica);
        var clock = Stopwatch.StartNew();
        await connection.SendAsync("GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        Assert.True(await TrickleHeaderUntilClosedAsync(connection, TimeSpan.FromSeconds(8)),
            "a client sending a byte a second kept its connection 8 s past a 2 s header read timeout");
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"cut off after {clock.Elapsed.TotalSeconds:0.0} s, before the timeout");
    }

    /// <summary>
    /// A thousand slowloris clients (each a partial head, then a byte a second) do not keep a normal
    /// client from being served, and all are cut off at the header read timeout.
    /// </summary>
    [Fact]
    public async Task A_thousand_trickling_clients_do_not_keep_a_normal_client_from_being_served()
    {
        const int count = 1000;
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--http1-header-read-timeout", "4000"]);
        var slow = new List<RawConnection>();
        try
        {
            for (var batch = 0; batch < count; batch += 100)
                slow.AddRange(await Task.WhenAll(Enumerable.Range(0, 100).Select(async i =>
                {
                    var c = await RawConnection.ConnectAsync(mica);
                    await c.SendAsync($"GET /slow{batch + i} HTTP/1.1\r\nHost: x\r\nX-Slow: ");
                    return c;
                })));
            var trickling = slow.Select(c => TrickleHeaderUntilClosedAsync(c, TimeSpan.FromSeconds(20))).ToList();

            var clock = Stopwatch.StartNew();
            using (var client = mica.CreateClient(TimeSpan.FromSeconds(5)))
            using (var response = await client.GetAsync("/normal"))
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("GET /normal len=0 cl=- te=-", response.Headers.GetValues("x-echo").Single());
            }
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"the normal request took {clock.Elapsed.TotalSeconds:0.0} s among {count} slow clients");

            var closed = await Task.WhenAll(trickling);
            Assert.True(closed.All(c => c), $"{closed.Count(c => !c)} of {count} trickling clients were still connected 20 s on, past a 4 s header read timeout");
        }
        finally
        {
            foreach (var c in slow) c.Dispose();
        }
    }

    [Theory]
    [InlineData("auto")]
    [InlineData("1")]
    public async Task An_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(string http)
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--http", http, "--timeout-keep-alive", "2"]);

        await using var used = await RawConnection.ConnectAsync(mica);
        await used.SendAsync(RawConnection.Get("/ka"));
        Assert.Equal(200, (await used.ReadResponseAsync()).Status);
        var idle = Stopwatch.StartNew();
        var rest = await used.ReadUntilClosedAsync(TimeSpan.FromSeconds(8));
        Assert.True(rest is not null, "an idle keep-alive connection stayed open 8 s with --timeout-keep-alive 2");
        Assert.True(idle.Elapsed >= TimeSpan.FromSeconds(1.5), $"closed after {idle.Elapsed.TotalSeconds:0.0} s idle, before the timeout");

        // A connection that never sends a byte is idle too: closed, without an answer to no request.
        await using var silent = await RawConnection.ConnectAsync(mica);
        idle.Restart();
        var nothing = await silent.ReadUntilClosedAsync(TimeSpan.FromSeconds(8));
        Assert.True(nothing is not null, "a connection that sent nothing stayed open 8 s with --timeout-keep-alive 2");
        Assert.Empty(nothing);
        Assert.True(idle.Elapsed >= TimeSpan.FromSeconds(1.5), $"closed after {idle.Elapsed.TotalSeconds:0.0} s, before the timeout");
    }

    [Fact]
    public async Task A_keep_alive_connection_used_within_the_timeout_stays_open()
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--timeout-keep-alive", "3"]);
        await using var connection = await RawConnection.ConnectAsync(mica);
        for (var i = 0; i < 4; i++)
        {
            await connection.SendAsync(RawConnection.Get($"/ka{i}"));
            Assert.Equal(200, (await connection.ReadResponseAsync()).Status);
            Assert.Null(await connection.ReadUntilClosedAsync(TimeSpan.FromSeconds(1)));   // 1 s idle: still open
        }
    }

    [Fact]
    public async Task A_request_body_slower_than_the_minimum_rate_is_cut_off_after_the_grace()
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--min-request-body-rate", "1000"]);
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync("POST /upload?announce HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
        await mica.WaitForStdoutAsync("reading the body of POST /upload?announce");
        var clock = Stopwatch.StartNew();
        var answer = await TrickleUntilClosedAsync(connection, new byte[500], TimeSpan.FromSeconds(15));   // below 1000, above the default 240
        Assert.True(answer is not null, "an upload at 500 B/s was still going 15 s on, with --min-request-body-rate 1000");
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(4), $"cut off after {clock.Elapsed.TotalSeconds:0.0} s, within the 5 s grace");
        // Kestrel's verdict is a 408 (Request Timeout), as its own answer when the app has not responded.
        Assert.StartsWith("HTTP/1.1 408 ", System.Text.Encoding.Latin1.GetString(answer));
    }

    /// <remarks>
    /// Kestrel gives each write size / rate plus the grace to complete: the app's one 16 MiB write
    /// at 10 MB/s has 6.7 s. The client reads nothing for 10 s, then reads what is left: a cut-off
    /// response ends short; one that was not cut off arrives whole.
    /// </remarks>
    [Fact]
    public async Task A_client_taking_a_response_slower_than_the_minimum_rate_is_cut_off_after_the_grace()
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--min-response-rate", "10000000"]);
        const int size = 16 * 1024 * 1024;
        using var client = new TcpClient(AddressFamily.InterNetwork) { ReceiveBufferSize = 4096 };
        await client.ConnectAsync(mica.Host, mica.Port);
        var stream = client.GetStream();
        // wire_echo sends the body back: 16 MiB the client does not read at first.
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"POST /echo?announce HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n"));
        await mica.WaitForStdoutAsync("reading the body of POST /echo?announce");
        await stream.WriteAsync(new byte[size]);

        await Task.Delay(TimeSpan.FromSeconds(10));   // the response stalls meanwhile: 0 B/s
        long received = 0;
        var buffer = new byte[256 * 1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buffer, cts.Token)) > 0) received += n;
        }
        catch (IOException) { }   // reset
        catch (OperationCanceledException) { Assert.Fail($"the response was neither cut off nor sent whole ({received} bytes read)"); }
        Assert.True(received < size, $"{received} bytes arrived for a {size}-byte body: the stalled response was not cut off");
    }
}

/// <summary><c>--limit-concurrency</c>: connections beyond the limit get 503 (HTTP/1.1) or are closed (HTTP/2), never reaching the app.</summary>
public sealed class ConnectionLimitTests
{
    [Fact]
    public async Task A_request_on_a_connection_beyond_the_limit_gets_503_and_the_connection_closes()
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--limit-concurrency", "2"]);
        var first = await RawConnection.ConnectAsync(mica);
        await using var second = await RawConnection.ConnectAsync(mica);
        foreach (var c in new[] { first, second })
        {
            await c.SendAsync(RawConnection.Get("/within"));
            Assert.Equal(200, (await c.ReadResponseAsync()).Status);
        }

        await using (var third = await RawConnection.ConnectAsync(mica))
        {
            await third.SendAsync(RawConnection.Get("/beyond"));
            var refused = await third.ReadResponseAsync();
            Assert.Equal(503, refused.Status);
            Assert.Null(refused.Header("x-echo"));
            Assert.Equal("close", refused.Header("connection"));
            Assert.True(await third.WaitClosedAsync(TimeSpan.FromSeconds(5)), "the connection beyond the limit stayed open");
        }

        // The two within the limit go on; once one closes, a new connection is within the limit.
        await second.SendAsync(RawConnection.Get("/again"));
        Assert.Equal(200, (await second.ReadResponseAsync()).Status);
        first.Dispose();
        var clock = Stopwatch.StartNew();
        while (await StatusOnNewConnectionAsync(mica, "/after") != 200)   // until the server has seen the close
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "no new connection was served within 10 s of one of the two closing");
            await Task.Delay(20);
        }
    }

    private static async Task<int> StatusOnNewConnectionAsync(MicaProcess mica, string target)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(RawConnection.Get(target, "Connection: close"));
        return (await connection.ReadResponseAsync()).Status;
    }

    [Fact]
    public async Task An_HTTP2_connection_beyond_the_limit_is_closed()
    {
        await using var mica = await MicaProcess.StartAsync("wire_echo:app", ["--limit-concurrency", "1"]);
        await using var holder = await RawConnection.ConnectAsync(mica);
        await holder.SendAsync(RawConnection.Get("/hold"));
        Assert.Equal(200, (await holder.ReadResponseAsync()).Status);

        using var http2 = new HttpClient
        {
            BaseAddress = mica.BaseAddress,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(10),
        };
        await Assert.ThrowsAsync<HttpRequestException>(() => http2.GetAsync("/h2"));
    }
}
