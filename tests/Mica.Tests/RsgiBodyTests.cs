using System.Net;
using System.Text;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The request body through the RSGI protocol object: <c>await protocol()</c> (the whole body) and
/// <c>async for chunk in protocol</c> (chunks as they arrive), small and large, over HTTP/1.1 and
/// HTTP/2; and reading it twice, a ProtocolError.
/// </summary>
public sealed class RsgiBodyTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    private const int FiveMiB = 5 * 1024 * 1024;

    /// <summary>Granian's large test body: 40 000 characters, "0000test" ... "4999test" zero-filled to 8.</summary>
    private static readonly string GranianBody = string.Concat(Enumerable.Range(0, 5000).Select(i => $"{i}test".PadLeft(8, '0')));

    [Fact]
    public async Task Await_protocol_gives_the_whole_body_as_bytes()
    {
        using var client = Clients.Http11(Server.Base);
        using var response = await client.PostAsync("/echo", new StringContent("test"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("test", await response.Content.ReadAsStringAsync());
        Assert.Equal("bytes", response.Headers.GetValues("x-body-type").Single());
    }

    [Theory]
    [InlineData("/echo")]
    [InlineData("/echos")]
    public async Task A_40000_character_body_is_echoed_exactly(string route)
    {
        Assert.Equal(40000, GranianBody.Length);
        using var client = Clients.Http11(Server.Base);
        using var response = await client.PostAsync(route, new StringContent(GranianBody));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(GranianBody, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_empty_body_is_empty_bytes_and_async_for_yields_nothing()
    {
        var call = await Rsgi.RawAsync(Mica, Rsgi.Request("GET", "/digest-call"));
        var called = Json.Parse(call.Body);
        Assert.Equal((0, "bytes"), (called.Int("length"), called.Str("type")));

        var iterate = await Rsgi.RawAsync(Mica, Rsgi.Request("POST", "/digest", "Content-Length: 0"));
        var iterated = Json.Parse(iterate.Body);
        Assert.Equal(0, iterated.Int("length"));
        Assert.Equal(0, iterated.Int("empty_chunks"));
    }

    [Fact]
    public async Task A_5_MiB_body_arrives_whole_through_await_protocol_and_is_echoed()
    {
        var data = TestData.RandomBytes(FiveMiB, 51);
        using var client = Clients.Http11(Server.Base);
        using var response = await client.PostAsync("/echo", new ByteArrayContent(data));
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}\n{Mica.Dump(30)}");
        Assert.Equal(FiveMiB, body.Length);
        Assert.Equal(TestData.Sha256(data), TestData.Sha256(body));

        using var digest = await client.PostAsync("/digest-call", new ByteArrayContent(data));
        var result = Json.Parse(await digest.Content.ReadAsStringAsync());
        Assert.Equal((FiveMiB, TestData.Sha256(data)), (result.Int("length"), result.Str("sha256")));
    }

    [Fact]
    public async Task A_5_MiB_body_arrives_in_several_chunks_through_async_for()
    {
        var data = TestData.RandomBytes(FiveMiB, 52);
        using var client = Clients.Http11(Server.Base);
        using var response = await client.PostAsync("/digest", new ByteArrayContent(data));
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(FiveMiB, result.Int("length"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Int("chunks") > 1, $"5 MiB came as {result.Int("chunks")} chunk(s): not streamed");
        Assert.Equal(0, result.Int("empty_chunks"));
    }

    [Fact]
    public async Task A_5_MiB_body_streamed_back_while_it_is_still_arriving()
    {
        // Full duplex on one HTTP/1.1 connection: the app sends each chunk back as it arrives, the
        // client sends and reads at the same time (neither side may wait for the other's end).
        var data = TestData.RandomBytes(FiveMiB, 53);
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /echos HTTP/1.1\r\nHost: localhost\r\nContent-Length: {data.Length}\r\nConnection: close\r\n\r\n");
        var sending = Task.Run(async () =>
        {
            for (var offset = 0; offset < data.Length; offset += 64 * 1024)
                await connection.SendAsync(data.AsMemory(offset, Math.Min(64 * 1024, data.Length - offset)));
        });
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.True(head.IsChunked, "a streamed response without a length is chunked");
        var body = await connection.ReadBodyAsync(head);
        await sending;
        Assert.Equal(FiveMiB, body.Length);
        Assert.Equal(TestData.Sha256(data), TestData.Sha256(body));
    }

    [Fact]
    public async Task A_5_MiB_body_over_HTTP2_through_await_protocol_and_async_for()
    {
        var data = TestData.RandomBytes(FiveMiB, 54);
        using var client = Clients.Http2(Server.Base);
        using var echoed = await client.PostAsync("/echo", new ByteArrayContent(data));
        Assert.Equal(HttpVersion.Version20, echoed.Version);
        Assert.Equal(TestData.Sha256(data), TestData.Sha256(await echoed.Content.ReadAsByteArrayAsync()));

        using var digest = await client.PostAsync("/digest", new ByteArrayContent(data));
        var result = Json.Parse(await digest.Content.ReadAsStringAsync());
        Assert.Equal((FiveMiB, TestData.Sha256(data)), (result.Int("length"), result.Str("sha256")));
        Assert.True(result.Int("chunks") > 1, $"5 MiB came as {result.Int("chunks")} chunk(s)");
    }

    [Fact]
    public async Task A_chunked_request_body_is_read_whole()
    {
        var chunks = new[] { "first,", "second,", "third" };
        var request = "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            + string.Concat(chunks.Select(c => $"{Encoding.ASCII.GetByteCount(c):x}\r\n{c}\r\n")) + "0\r\n\r\n";
        var response = await Rsgi.RawAsync(Mica, request);
        Assert.Equal(200, response.Status);
        Assert.Equal("first,second,third", response.BodyText);
    }

    [Theory]
    [InlineData("call-call")]
    [InlineData("iter-iter")]
    [InlineData("call-iter")]
    [InlineData("iter-call")]
    public async Task Reading_the_body_a_second_time_raises_ProtocolError_at_once(string mode)
    {
        var response = await Rsgi.RawAsync(Mica, Rsgi.Request("POST", $"/body-twice?mode={mode}", "Content-Length: 5") + "hello");
        Assert.True(response.Status == 200, $"{response.Status} {response.BodyText}");
        var result = Json.Parse(response.Body);
        Assert.Equal(5, result.Int("first"));
        Assert.Equal("ProtocolError", result.Str("error"));
        Assert.True(result.Bool("is_protocol_error"));
        Assert.True(result.Bool("sync"), "the second read should fail when called, not only when awaited");
    }
}

/// <summary>
/// A body sent with <c>Expect: 100-continue</c> (what curl does above 1 MiB) to an app that starts
/// a streamed response before reading it. The "100 Continue" must come before the 200 or not at
/// all, never inside the 200's body. Fresh servers: the race shows most on cold ones.
/// </summary>
public sealed class RsgiExpectContinueTests
{
    [Fact]
    public async Task Expect_100_continue_with_a_streamed_echo_keeps_the_response_well_formed()
    {
        using var dir = new ScratchDir();
        var file = dir.File("body.bin");
        var data = TestData.RandomBytes(5 * 1024 * 1024, 55);
        await File.WriteAllBytesAsync(file, data);
        var failures = new List<string>();
        // Each request takes about a second: the app answers before it reads, so no 100 is sent and
        // curl waits out its expect timeout before sending the body. The race this guards against
        // showed most on fresh servers, hence several servers with a few requests each.
        for (var round = 0; round < 3; round++)
        {
            await using var server = await ProtoServer.StartAsync(RsgiAppServer.AppName, "--interface", "rsgi");
            for (var i = 0; i < 5; i++)
            {
                // curl sends "Expect: 100-continue" for a body this big and waits for the 100 (or the response).
                var result = await Curl.RunAsync("--data-binary", "@" + file, server.Base + "/echos");
                if (result.ExitCode != 0 || result.Status != 200 || TestData.Sha256(result.Body) != TestData.Sha256(data))
                    failures.Add($"server {round}, attempt {i}: curl exit {result.ExitCode}, status {result.Status}, {result.Body.Length} bytes: {result.Run.Stderr.Trim()}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of 15 streamed echoes failed:\n{string.Join('\n', failures)}");
    }
}
