using System.Net;
using System.Text;
using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>receive() streams the request body as http.request messages with more_body (raw_app.py /body).</summary>
public sealed class RequestBodyTests(RawAppServer server) : ServerTests<RawAppServer>(server)
{
    private const int MiB = 1024 * 1024;

    private async Task<JsonElement> PostAsync(HttpContent content)
    {
        using var client = Mica.CreateClient(TimeSpan.FromSeconds(60));
        using var response = await client.PostAsync("/body", content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        return Json.Parse(text);
    }

    /// <remarks>
    /// Kestrel may hold up to 1 MiB of unread body (MaxRequestBufferSize), so a fast 1 MiB upload can
    /// legitimately reach the app in one message; that the body is streamed rather than buffered is
    /// proven by <see cref="Body_chunks_reach_the_app_before_the_upload_finishes"/> and the 20 MiB test.
    /// </remarks>
    [Fact]
    public async Task One_MiB_upload_arrives_whole_with_consistent_more_body()
    {
        var data = TestData.RandomBytes(MiB, 1);
        var result = await PostAsync(new ByteArrayContent(data));
        Assert.Equal(data.Length, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Bool("flags_ok"), "every message is http.request with bytes body and bool more_body: " + result);
        Assert.True(result.Int("max_chunk") <= data.Length, result.ToString());
    }

    [Fact]
    public async Task One_MiB_upload_sent_in_paced_pieces_arrives_in_several_chunks()
    {
        var data = TestData.RandomBytes(MiB, 5);
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /body HTTP/1.1\r\nHost: localhost\r\nContent-Length: {data.Length}\r\n\r\n");
        const int piece = 256 * 1024;
        for (var offset = 0; offset < data.Length; offset += piece)
        {
            await connection.SendAsync(data.AsMemory(offset, piece));
            await Task.Delay(50);   // pacing, so that the pieces do not all arrive at once
        }
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        var result = Json.Parse(response.Body);
        Assert.Equal(data.Length, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Bool("flags_ok"), result.ToString());
        Assert.True(result.Int("chunks") >= 2, "1 MiB sent over 200 ms was delivered in one message (buffered whole): " + result);
        Assert.True(result.Int("max_chunk") < data.Length, result.ToString());
    }

    [Fact]
    public async Task Twenty_MiB_upload_is_streamed_not_buffered()
    {
        var data = TestData.RandomBytes(20 * MiB, 2);
        var result = await PostAsync(new ByteArrayContent(data));
        Assert.Equal(data.Length, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Bool("flags_ok"), result.ToString());
        Assert.True(result.Int("chunks") >= 8, "too few chunks for 20 MiB: " + result);
        Assert.True(result.Int("max_chunk") <= data.Length / 8, $"largest chunk {result.Int("max_chunk")} bytes of {data.Length}: the body was buffered, not streamed");
    }

    /// <summary>Request bodies are unlimited by default (as in Granian): Kestrel's own 30 MB limit does not apply.</summary>
    [Fact]
    public async Task Forty_MiB_upload_is_taken_whole_by_default()
    {
        var data = TestData.RandomBytes(40 * MiB, 40);
        var result = await PostAsync(new ByteArrayContent(data));
        Assert.Equal(data.Length, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
    }

    /// <summary>Content of unknown length: HttpClient sends it with Transfer-Encoding: chunked.</summary>
    private sealed class UnknownLengthContent(byte[] data, int piece) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(System.IO.Stream stream, TransportContext? context)
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
    public async Task Chunked_request_body_is_streamed_to_the_app()
    {
        var data = TestData.RandomBytes(4 * MiB, 3);
        using var client = Mica.CreateClient(TimeSpan.FromSeconds(60));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/body") { Content = new UnknownLengthContent(data, 64 * 1024) };
        request.Headers.TransferEncodingChunked = true;
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var result = Json.Parse(text);
        Assert.Equal(data.Length, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
        Assert.True(result.Bool("flags_ok"), result.ToString());
        Assert.True(result.Int("chunks") >= 2, result.ToString());
        Assert.True(result.Int("max_chunk") < data.Length, result.ToString());
    }

    [Fact]
    public async Task Raw_chunked_body_is_decoded_and_reassembled()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("POST /body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n" +
                                   "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        var result = Json.Parse(response.Body);
        Assert.Equal(11, result.Int("bytes"));
        Assert.Equal(TestData.Sha256("hello world"u8.ToArray()), result.Str("sha256"));
        Assert.True(result.Bool("flags_ok"), result.ToString());
    }

    [Fact]
    public async Task Empty_body_is_one_message_without_more_body()
    {
        using var response = await Client.PostAsync("/body", new ByteArrayContent([]));
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(0, result.Int("bytes"));
        Assert.Equal(1, result.Int("chunks"));
        Assert.True(result.Bool("flags_ok"), result.ToString());
    }

    [Fact]
    public async Task Body_chunks_reach_the_app_before_the_upload_finishes()
    {
        var key = Keys.New();
        var data = TestData.RandomBytes(MiB, 4);
        const int firstPart = 64 * 1024;
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /body?announce={key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {data.Length}\r\n\r\n");
        await connection.SendAsync(data.AsMemory(0, firstPart));
        // Only part of the body has been sent: the app can see it only if the body is streamed.
        var line = await Mica.WaitForStdoutAsync($"FIRST CHUNK {key} ");
        var seen = int.Parse(line.Text.Split(' ')[^1]);
        Assert.InRange(seen, 1, firstPart);
        await connection.SendAsync(data.AsMemory(firstPart));
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        var result = Json.Parse(response.Body);
        Assert.Equal(data.Length, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(data), result.Str("sha256"));
    }

    [Fact]
    public async Task Expect_100_continue_is_answered_and_the_body_delivered()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("POST /body HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        var interim = await connection.ReadHeadAsync();
        Assert.Equal(100, interim.Status);
        await connection.SendAsync("hello");
        var response = await connection.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        var result = Json.Parse(response.Body);
        Assert.Equal(5, result.Int("bytes"));
        Assert.Equal(TestData.Sha256(Encoding.ASCII.GetBytes("hello")), result.Str("sha256"));
    }
}
