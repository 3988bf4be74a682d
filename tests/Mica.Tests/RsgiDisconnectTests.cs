using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The client going away, as the RSGI app sees it: client_disconnect() resolves, a stream send
/// raises ProtocolClosed, a body read raises ProtocolClosed.
/// </summary>
public sealed class RsgiDisconnectTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    [Fact]
    public async Task Client_disconnect_resolves_when_the_client_goes_away()
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await using (connection)
        {
            await connection.SendAsync(RawConnection.Get($"/wait-disconnect?key={key}"));
            var head = await connection.ReadHeadAsync();
            Assert.Equal(200, head.Status);
            Assert.Equal("waiting\n", System.Text.Encoding.ASCII.GetString(await connection.ReadChunkAsync()));
            Assert.DoesNotContain(Mica.StdoutLines, l => l == $"rsgi-disconnected {key}");
            connection.Abort();
        }
        await Rsgi.WaitForEventAsync(Mica, "rsgi-disconnected", key);
    }

    [Fact]
    public async Task Client_disconnect_resolves_for_an_HTTP2_stream_reset()
    {
        var key = Keys.New();
        using var client = Clients.Http2(Server.Base);
        var response = await client.GetAsync($"/wait-disconnect?key={key}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, response.Version);
        var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[8];
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            await body.ReadExactlyAsync(buffer, cts.Token);
        Assert.Equal("waiting\n", System.Text.Encoding.ASCII.GetString(buffer));
        // Disposing an unfinished response resets its stream (RST_STREAM); the connection stays.
        body.Dispose();
        response.Dispose();
        await Rsgi.WaitForEventAsync(Mica, "rsgi-disconnected", key);
        Assert.Equal("testtesttest", await client.GetStringAsync("/stream"));
    }

    [Fact]
    public async Task Client_disconnect_resolves_once_the_response_is_complete_on_a_kept_alive_connection()
    {
        // Mica resolves the watcher when the request is over, instead of leaving it pending for as
        // long as the keep-alive connection lives (the spec leaves cancelling it to the app).
        var key = Keys.New();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get($"/watch-then-respond?key={key}"));
        var response = await connection.ReadResponseAsync();
        Assert.Equal("ok", response.BodyText);
        await Rsgi.WaitForEventAsync(Mica, "rsgi-watch-done", key);
        // The connection is still open and usable.
        await connection.SendAsync(RawConnection.Get("/bytearray"));
        Assert.Equal("from a bytearray", (await connection.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task A_stream_send_after_the_client_left_raises_ProtocolClosed()
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await using (connection)
        {
            await connection.SendAsync(RawConnection.Get($"/push-until-closed?key={key}"));
            var head = await connection.ReadHeadAsync();
            Assert.Equal(200, head.Status);
            Assert.NotEmpty(await connection.ReadChunkAsync());
            connection.Abort();
        }
        Assert.Equal("ProtocolClosed", await Rsgi.WaitForEventAsync(Mica, "rsgi-push-closed", key));
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Theory]
    [InlineData("call")]
    [InlineData("iter")]
    public async Task A_body_read_when_the_client_aborts_the_upload_raises_ProtocolClosed(string how)
    {
        var key = Keys.New();
        var connection = await RawConnection.ConnectAsync(Mica);
        await using (connection)
        {
            await connection.SendAsync($"POST /read-abort?key={key}&how={how} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n0123456789");
            await Rsgi.WaitForEventAsync(Mica, "rsgi-read-start", key);
            connection.Abort();
        }
        Assert.Equal("ProtocolClosed", await Rsgi.WaitForEventAsync(Mica, "rsgi-read-abort", key));
        await Rsgi.AssertStillServingAsync(Mica);
    }
}
