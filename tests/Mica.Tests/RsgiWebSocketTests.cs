using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// RSGI websockets (rsgi_app.py /ws_*): accept, receive (message kinds), send_bytes/send_str,
/// close before accept (an HTTP status) and after (a close code the client sees), the scope,
/// ProtocolClosed/ProtocolError after the close, and apps that return or raise.
/// </summary>
public sealed class RsgiWebSocketTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    [Fact]
    public async Task Text_is_echoed_as_text_and_bytes_as_bytes()
    {
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_echo?key={Keys.New()}");
        var text = await ws.EchoTextAsync("foo");
        Assert.Equal((WebSocketMessageType.Text, "foo"), (text.Type, text.Text));
        await ws.SendBinaryAsync("foo"u8.ToArray());
        var binary = await ws.ReceiveMessageAsync();
        Assert.Equal(WebSocketMessageType.Binary, binary.Type);
        Assert.Equal("foo"u8.ToArray(), binary.Data);
        var unicode = await ws.EchoTextAsync("héllo ✓ 😀");
        Assert.Equal("héllo ✓ 😀", unicode.Text);
        await ws.CloseCleanlyAsync();
    }

    [Fact]
    public async Task A_1_MiB_binary_message_is_echoed_whole()
    {
        var data = TestData.RandomBytes(1024 * 1024, 71);
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_echo?key={Keys.New()}");
        await ws.SendBinaryAsync(data);
        var echoed = await ws.ReceiveMessageAsync();
        Assert.Equal(WebSocketMessageType.Binary, echoed.Type);
        Assert.Equal(TestData.Sha256(data), TestData.Sha256(echoed.Data));
        await ws.CloseCleanlyAsync();
    }

    [Fact]
    public async Task Messages_have_kind_2_with_str_and_kind_1_with_bytes()
    {
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_echo?key={Keys.New()}&describe=1");
        var text = Json.Parse((await ws.EchoTextAsync("héllo")).Data);
        Assert.Equal(2, text.Int("kind"));
        Assert.True(text.Bool("is_string_kind"));
        Assert.False(text.Bool("is_bytes_kind"));
        Assert.Equal(("str", 5), (text.Str("data_type"), text.Int("length")));

        await ws.SendBinaryAsync([0, 1, 2]);
        var binary = Json.Parse((await ws.ReceiveMessageAsync()).Data);
        Assert.Equal(1, binary.Int("kind"));
        Assert.True(binary.Bool("is_bytes_kind"));
        Assert.Equal(("bytes", 3), (binary.Str("data_type"), binary.Int("length")));
        await ws.CloseCleanlyAsync();
    }

    [Fact]
    public async Task The_clients_close_is_kind_0_and_a_receive_after_it_raises_ProtocolClosed()
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_echo?key={key}");
        Assert.Equal("before", (await ws.EchoTextAsync("before")).Text);
        await ws.CloseCleanlyAsync(WebSocketCloseStatus.NormalClosure, "done");
        Assert.Equal(WebSocketState.Closed, ws.State);
        Assert.Equal("kind=0 data=None", await Rsgi.WaitForEventAsync(Mica, "rsgi-ws-closed", key));
        Assert.Equal("ProtocolClosed", await Rsgi.WaitForEventAsync(Mica, "rsgi-ws-after-close", key));
    }

    [Theory]
    [InlineData("/ws_reject", 403)]
    [InlineData("/ws_reject?status=404", 404)]
    [InlineData("/ws_reject?status=401", 401)]
    public async Task Close_before_accept_rejects_with_that_HTTP_status(string target, int status)
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, target);
        Assert.Equal(status, raw.Response.Status);
        Assert.Null(raw.Response.Header("sec-websocket-accept"));
        Assert.Null(raw.Response.Header("upgrade"));
    }

    [Fact]
    public async Task A_rejected_websocket_fails_the_clients_connect()
    {
        using var ws = new ClientWebSocket();
        using var cts = new CancellationTokenSource(Ws.Timeout);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(Ws.Url(Mica, "/ws_reject"), cts.Token));
        // As Granian's test_reject with the websockets library: the handshake fails with status 403.
        var run = await Tool.RunAsync(MicaProcess.Python, ["-c", """
            import asyncio, sys, websockets
            async def main():
                try:
                    async with websockets.connect(sys.argv[1]):
                        print("connected")
                except websockets.exceptions.InvalidStatusCode as e:
                    print("status", e.status_code)
            asyncio.run(main())
            """, Ws.Url(Mica, "/ws_reject").ToString()], TimeSpan.FromSeconds(20));
        Assert.True(run.Stdout.Trim() == "status 403", run.ToString());
    }

    [Theory]
    [InlineData(4001)]
    [InlineData(1000)]
    [InlineData(1001)]
    [InlineData(3000)]
    [InlineData(4999)]
    public async Task Close_after_accept_sends_that_close_code_and_a_later_send_raises_ProtocolError(int code)
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_close?key={key}&code={code}");
        Assert.Equal("closing", (await ws.ReceiveMessageAsync()).Text);
        var close = await ws.ReceiveMessageAsync();
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(code, close.CloseCode);
        Assert.Equal("ProtocolError", await Rsgi.WaitForEventAsync(Mica, "rsgi-ws-send-after-close", key));
    }

    [Theory]
    [InlineData(999)]
    [InlineData(5000)]
    public async Task A_close_code_outside_1000_to_4999_becomes_1000(int code)
    {
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_close?key={Keys.New()}&code={code}");
        Assert.Equal("closing", (await ws.ReceiveMessageAsync()).Text);
        var close = await ws.ReceiveMessageAsync();
        Assert.Equal((WebSocketMessageType.Close, (int?)1000), (close.Type, close.CloseCode));
    }

    [Theory]
    [InlineData(1004)]
    [InlineData(1005)]
    [InlineData(1006)]
    [InlineData(1015)]
    public async Task A_close_code_that_cannot_be_sent_still_closes_the_socket_with_a_valid_code(int code)
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, $"/ws_close?key={Keys.New()}&code={code}");
        Assert.Equal(101, raw.Response.Status);
        Assert.Equal("closing", (await raw.ReceiveDataOrCloseAsync()).Text);
        var close = await raw.ReceiveDataOrCloseAsync();
        Assert.Equal(WsFrame.Close, close.Opcode);
        Assert.True(close.Payload.Length >= 2, "a close frame without a code (the client would see 1005)");
        Assert.DoesNotContain(close.CloseCode, new[] { 1004, 1005, 1006, 1015 });
        await raw.SendCloseAsync(close.CloseCode);
        Assert.True(await raw.WaitClosedAsync(TimeSpan.FromSeconds(10)), "the connection stayed open after the close handshake");
    }

    [Fact]
    public async Task Websocket_scope_has_every_attribute_as_Granian_gives_it()
    {
        // As Granian's test_rsgi_scope: /ws_info?test=true; plus repeated headers (RawWebSocket).
        await using var raw = await RawWebSocket.ConnectAsync(Mica, "/ws_info?test=true&look=x-rep", "X-Rep: 1", "X-Rep: 2");
        Assert.Equal(101, raw.Response.Status);
        Assert.Equal(RawWebSocket.AcceptFor(raw.Key), raw.Response.Header("sec-websocket-accept"));
        var frame = await raw.ReceiveDataOrCloseAsync();
        Assert.Equal(WsFrame.TextOpcode, frame.Opcode);
        var scope = Json.Parse(frame.Payload);
        Assert.Equal("ws", scope.Str("proto"));
        Assert.Equal("1.1", scope.Str("http_version"));
        Assert.Equal("1.6", scope.Str("rsgi_version"));
        Assert.Equal("http", scope.Str("scheme"));   // not "ws": RSGI keeps http/https for websockets
        Assert.Equal("GET", scope.Str("method"));
        Assert.Equal("/ws_info", scope.Str("path"));
        Assert.Equal("test=true&look=x-rep", scope.Str("query_string"));
        Assert.Equal($"localhost:{Server.Port}", scope.GetProperty("headers").Str("host"));
        Assert.Equal(JsonValueKind.Null, scope.GetProperty("authority").ValueKind);
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("server"));
        Assert.Equal($"127.0.0.1:{raw.LocalEndPoint.Port}", scope.Str("client"));
        Assert.Equal("websocket", scope.GetProperty("headers").Str("upgrade").ToLowerInvariant());
        Assert.Equal(["1", "2"], Rsgi.Strings(scope.GetProperty("lookups").GetProperty("X-REP").GetProperty("get_all")));
        Assert.True(scope.Bool("protocol_is_WebsocketProtocol"));
        Assert.True(scope.GetProperty("types").Bool("scope_is_Scope"));
        Assert.Equal("AttributeError", scope.Str("readonly"));

        await raw.SendCloseAsync(1000);
        var close = await raw.ReceiveDataOrCloseAsync();
        Assert.Equal(WsFrame.Close, close.Opcode);
        Assert.True(await raw.WaitClosedAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Returning_without_accepting_rejects_with_403()
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, "/ws_nothing");
        Assert.Equal(403, raw.Response.Status);
        Assert.Null(raw.Response.Header("sec-websocket-accept"));
    }

    [Fact]
    public async Task Raising_before_accepting_is_a_500_and_logged()
    {
        var mark = Mica.Mark();
        await using var raw = await RawWebSocket.ConnectAsync(Mica, "/ws_raise_before");
        Assert.Equal(500, raw.Response.Status);
        await Rsgi.WaitForErrorAsync(Mica, "Exception in RSGI application", mark);
        await Mica.WaitForStderrAsync("RuntimeError: rsgi ws boom before accept", TimeSpan.FromSeconds(10), mark);
    }

    [Fact]
    public async Task Raising_after_accepting_closes_with_1011_and_is_logged()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_raise_after?key={key}");
        var close = await ws.ReceiveMessageAsync();
        Assert.Equal((WebSocketMessageType.Close, (int?)1011), (close.Type, close.CloseCode));
        await Rsgi.WaitForErrorAsync(Mica, "Exception in RSGI application", mark);
        await Mica.WaitForStderrAsync($"RuntimeError: rsgi ws boom {key}", TimeSpan.FromSeconds(10), mark);
    }

    [Fact]
    public async Task Returning_with_the_socket_open_closes_it_with_1000()
    {
        using var ws = await Ws.ConnectAsync(Mica, "/ws_return_open");
        Assert.Equal("hi", (await ws.ReceiveMessageAsync()).Text);
        var close = await ws.ReceiveMessageAsync();
        Assert.Equal((WebSocketMessageType.Close, (int?)1000), (close.Type, close.CloseCode));
    }

    [Fact]
    public async Task A_send_after_the_client_vanished_raises_ProtocolClosed()
    {
        var key = Keys.New();
        var raw = await RawWebSocket.ConnectAsync(Mica, $"/ws_push?key={key}");
        await using (raw)
        {
            Assert.Equal(101, raw.Response.Status);
            Assert.Equal("ping", (await raw.ReceiveDataOrCloseAsync()).Text);
            raw.Abort();
        }
        Assert.Equal("ProtocolClosed", await Rsgi.WaitForEventAsync(Mica, "rsgi-ws-push-end", key));
    }

    [Fact]
    public async Task A_second_accept_raises_ProtocolError_and_the_socket_stays_usable()
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/ws_accept_twice?key={key}");
        Assert.Equal("still open", (await ws.ReceiveMessageAsync()).Text);
        var close = await ws.ReceiveMessageAsync();
        Assert.Equal((WebSocketMessageType.Close, (int?)1000), (close.Type, close.CloseCode));
        Assert.Equal("ProtocolError", await Rsgi.WaitForEventAsync(Mica, "rsgi-ws-accept-twice", key));
    }

    [Fact]
    public async Task A_websocket_over_HTTP2_has_version_2_and_echoes()
    {
        // Extended CONNECT (RFC 8441) on a cleartext HTTP/2 connection.
        using var handler = Clients.Handler();
        using var invoker = new HttpMessageInvoker(handler);
        using var ws = new ClientWebSocket();
        ws.Options.HttpVersion = System.Net.HttpVersion.Version20;
        ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using (var cts = new CancellationTokenSource(Ws.Timeout))
            await ws.ConnectAsync(Ws.Url(Mica, "/ws_info?h2=1"), invoker, cts.Token);
        var scope = Json.Parse((await ws.ReceiveMessageAsync()).Data);
        Assert.Equal("ws", scope.Str("proto"));
        Assert.Equal("2", scope.Str("http_version"));
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("/ws_info", scope.Str("path"));
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("authority"));
        await ws.CloseCleanlyAsync();
    }

    [Fact]
    public async Task Python_websockets_client_echo_as_in_Granians_test()
    {
        var run = await Tool.RunAsync(MicaProcess.Python, ["-c", """
            import asyncio, sys, websockets
            async def main():
                async with websockets.connect(sys.argv[1]) as ws:
                    await ws.send("foo")
                    text = await ws.recv()
                    await ws.send(b"foo")
                    data = await ws.recv()
                    print(repr(text), repr(data))
            asyncio.run(asyncio.wait_for(main(), 10))
            """, Ws.Url(Mica, $"/ws_echo?key={Keys.New()}").ToString()], TimeSpan.FromSeconds(20));
        Assert.True(run.ExitCode == 0 && run.Stdout.Trim() == "'foo' b'foo'", run.ToString());
    }
}
