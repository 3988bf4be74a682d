using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The ASGI websocket protocol as an app (ws_app.py) sees it and as clients see it: the scope, the
/// connect event, accept (subprotocol, headers), messages, close handshakes both ways, errors, and
/// the denial of a handshake (403, 500, or the app's own HTTP response).
/// </summary>
public sealed class WebSocketProtocolTests(WsAppServer server) : ServerTests<WsAppServer>(server)
{
    // ------------------------------------------------------------------ scope and connect

    [Fact]
    public async Task Scope_has_every_websocket_field()
    {
        var key = Keys.New();
        await using var ws = await RawWebSocket.ConnectAsync(Mica, $"/scope/caf%C3%A9/x?a=1&b=%20x&key={key}",
            "Sec-WebSocket-Protocol: chat.v1, chat.v2", "X-Custom-Header: Value1", "Origin: http://example.test");
        Assert.True(ws.Response.Status == 101, $"handshake: {ws.Response.Status} {ws.Response.BodyText}");
        var frame = await ws.ReceiveDataOrCloseAsync();
        Assert.Equal(WsFrame.TextOpcode, frame.Opcode);
        var payload = Json.Parse(frame.Payload);
        var scope = payload.GetProperty("scope");
        var types = payload.GetProperty("types");

        Assert.Equal("websocket", scope.Str("type"));
        Assert.Equal("ws", scope.Str("scheme"));
        Assert.Equal("/scope/café/x", scope.Str("path"));
        Assert.Equal("str", types.Str("path"));
        Assert.Equal("/scope/caf%C3%A9/x", scope.Str("raw_path"));
        Assert.Equal("bytes", types.Str("raw_path"));
        Assert.Equal($"a=1&b=%20x&key={key}", scope.Str("query_string"));
        Assert.Equal("bytes", types.Str("query_string"));
        Assert.Equal("1.1", scope.Str("http_version"));
        Assert.Equal("", scope.Str("root_path"));
        Assert.False(payload.Bool("has_method"), "a websocket scope has no method: " + scope);

        var headers = scope.GetProperty("headers").EnumerateArray().Select(h => (h[0].GetString()!, h[1].GetString()!)).ToList();
        Assert.All(headers, h => Assert.Equal(h.Item1.ToLowerInvariant(), h.Item1));
        Assert.All(payload.GetProperty("header_types").EnumerateArray(), t => Assert.EndsWith("[bytes,bytes]", t.GetString()));
        Assert.Contains(("x-custom-header", "Value1"), headers);
        Assert.Contains(("origin", "http://example.test"), headers);
        Assert.Contains(("sec-websocket-key", ws.Key), headers);
        Assert.Contains(("sec-websocket-version", "13"), headers);
        Assert.Contains(headers, h => h.Item1 == "upgrade" && h.Item2.Equals("websocket", StringComparison.OrdinalIgnoreCase));

        Assert.Equal(["chat.v1", "chat.v2"], scope.GetProperty("subprotocols").EnumerateArray().Select(s => s.GetString()));
        Assert.Equal(["str"], payload.GetProperty("subprotocol_types").EnumerateArray().Select(s => s.GetString()));

        var serverField = scope.GetProperty("server");
        Assert.Equal("127.0.0.1", serverField[0].GetString());
        Assert.Equal(Mica.Port, serverField[1].GetInt32());
        var client = scope.GetProperty("client");
        Assert.Equal("127.0.0.1", client[0].GetString());
        Assert.Equal(ws.LocalEndPoint.Port, client[1].GetInt32());

        var asgi = scope.GetProperty("asgi");
        Assert.Equal("3.0", asgi.Str("version"));
        Assert.Matches(@"^2\.\d+$", asgi.Str("spec_version"));
        Assert.Equal("dict", types.Str("state"));
        Assert.Equal("ws_app state", scope.GetProperty("state").Str("from_lifespan"));
        var extensions = scope.GetProperty("extensions");
        Assert.True(extensions.TryGetProperty("websocket.http.response", out var httpResponse), "extensions: " + extensions);
        Assert.Equal(JsonValueKind.Object, httpResponse.ValueKind);
        Assert.Empty(httpResponse.EnumerateObject());

        await ws.SendCloseAsync(1000);
        Assert.Equal(WsFrame.Close, (await ws.ReceiveDataOrCloseAsync()).Opcode);
    }

    [Fact]
    public async Task Scope_subprotocols_is_an_empty_list_when_none_is_offered()
    {
        using var ws = await Ws.ConnectAsync(Mica, $"/scope?key={Keys.New()}");
        var scope = Json.Parse((await ws.ReceiveMessageAsync()).Data).GetProperty("scope");
        Assert.Equal(JsonValueKind.Array, scope.GetProperty("subprotocols").ValueKind);
        Assert.Equal(0, scope.GetProperty("subprotocols").GetArrayLength());
        await ws.CloseCleanlyAsync();
    }

    [Fact]
    public async Task First_receive_is_websocket_connect()
    {
        var key = Keys.New();
        using (var ws = await Ws.ConnectAsync(Mica, $"/echo?key={key}"))
        {
            Assert.Equal("ping", (await ws.EchoTextAsync("ping")).Text);
            await ws.CloseCleanlyAsync();
        }
        await Ws.AppDisconnectAsync(Mica, Client, key);
        var seen = await Ws.SeenAsync(Client, key);
        Assert.Equal(["websocket.connect", "websocket.receive", "websocket.disconnect"], seen.Select(e => e.Str("type")));
        Assert.Single(seen[0].EnumerateObject());   // just {"type": "websocket.connect"}
    }

    // ------------------------------------------------------------------ accept

    [Fact]
    public async Task Accept_with_a_subprotocol_negotiates_it_and_sends_the_apps_headers()
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/accept-headers?pick=chat.v2&key={key}", o =>
        {
            o.AddSubProtocol("chat.v1");
            o.AddSubProtocol("chat.v2");
            o.CollectHttpResponseDetails = true;
        });
        Assert.Equal("chat.v2", ws.SubProtocol);
        Assert.Equal(System.Net.HttpStatusCode.SwitchingProtocols, ws.HttpStatusCode);
        var headers = ws.HttpResponseHeaders!;
        Assert.True(headers.TryGetValue("x-ws-accepted", out var accepted), "101 headers: " + string.Join(", ", headers.Keys));
        Assert.Equal($"yes {key}", Assert.Single(accepted!));
        Assert.Equal("subprotocols=chat.v1,chat.v2", (await ws.ReceiveMessageAsync()).Text);
        await ws.CloseCleanlyAsync();
    }

    [Fact]
    public async Task The_101_response_carries_the_handshake_and_the_apps_headers()
    {
        var key = Keys.New();
        await using var ws = await RawWebSocket.ConnectAsync(Mica, $"/accept-headers?pick=chat.v2&key={key}",
            "Sec-WebSocket-Protocol: chat.v1, chat.v2");
        var response = ws.Response;
        Assert.True(response.Status == 101, $"{response.Status} {response.BodyText}");
        Assert.Equal("websocket", response.Header("upgrade")?.ToLowerInvariant());
        Assert.Contains("upgrade", response.Header("connection")?.ToLowerInvariant());
        Assert.Equal(RawWebSocket.AcceptFor(ws.Key), response.Header("sec-websocket-accept"));
        Assert.Equal("chat.v2", response.Header("sec-websocket-protocol"));
        Assert.Equal($"yes {key}", response.Header("x-ws-accepted"));
        Assert.Equal("session=abc; Path=/", response.Header("set-cookie"));
        var frame = await ws.ReceiveDataOrCloseAsync();
        Assert.Equal("subprotocols=chat.v1,chat.v2", frame.Text);
        await ws.SendCloseAsync(1000);
        Assert.Equal(WsFrame.Close, (await ws.ReceiveDataOrCloseAsync()).Opcode);
    }

    [Fact]
    public async Task Accept_without_a_subprotocol_negotiates_none()
    {
        using var ws = await Ws.ConnectAsync(Mica, $"/accept-headers?key={Keys.New()}");
        Assert.Null(ws.SubProtocol);
        Assert.Equal("subprotocols=", (await ws.ReceiveMessageAsync()).Text);
        await ws.CloseCleanlyAsync();
    }

    // ------------------------------------------------------------------ messages

    [Fact]
    public async Task Text_and_binary_messages_reach_the_app_and_come_back_with_their_type()
    {
        var key = Keys.New();
        using (var ws = await Ws.ConnectAsync(Mica, $"/echo?key={key}"))
        {
            var text = await ws.EchoTextAsync("hello text");
            Assert.Equal(WebSocketMessageType.Text, text.Type);
            Assert.Equal("hello text", text.Text);

            await ws.SendBinaryAsync([0, 1, 2, 0x7f, 0x80, 0xff]);
            var binary = await ws.ReceiveMessageAsync();
            Assert.Equal(WebSocketMessageType.Binary, binary.Type);
            Assert.Equal([0, 1, 2, 0x7f, 0x80, 0xff], binary.Data);

            await ws.SendBinaryAsync([]);
            var empty = await ws.ReceiveMessageAsync();
            Assert.Equal(WebSocketMessageType.Binary, empty.Type);
            Assert.Empty(empty.Data);
            await ws.CloseCleanlyAsync();
        }
        await Ws.AppDisconnectAsync(Mica, Client, key);
        var received = (await Ws.SeenAsync(Client, key)).Where(e => e.Str("type") == "websocket.receive").ToArray();
        Assert.Equal(3, received.Length);
        Assert.Equal(("text", "str", "hello text"), (received[0].Str("kind"), received[0].Str("data_type"), received[0].Str("data")));
        Assert.Equal(("bytes", "bytes", "\0\u0001\u0002\u007f\u0080\u00ff"), (received[1].Str("kind"), received[1].Str("data_type"), received[1].Str("data")));
        Assert.Equal(("bytes", 0), (received[2].Str("kind"), received[2].Int("length")));
    }

    [Fact]
    public async Task Unicode_text_is_intact_both_ways()
    {
        const string text = "héllo wörld — 日本語 🎉 Ωμέγα \u0000 end";
        var key = Keys.New();
        using (var ws = await Ws.ConnectAsync(Mica, $"/echo?key={key}"))
        {
            var echo = await ws.EchoTextAsync(text);
            Assert.Equal(WebSocketMessageType.Text, echo.Type);
            Assert.Equal(text, echo.Text);
            await ws.CloseCleanlyAsync();
        }
        await Ws.AppDisconnectAsync(Mica, Client, key);
        var received = (await Ws.SeenAsync(Client, key)).Single(e => e.Str("type") == "websocket.receive");
        Assert.Equal(text, received.Str("data"));                       // the app got the same str, not mojibake
        Assert.Equal(text.EnumerateRunes().Count(), received.Int("length"));   // code points
    }

    [Fact]
    public async Task Messages_of_1_MiB_are_intact()
    {
        var key = Keys.New();
        var binary = RandomNumberGenerator.GetBytes(1024 * 1024);
        var text = string.Concat(Enumerable.Repeat("abcdéfgh日本🎉", 1024 * 1024 / 8))[..(1024 * 1024)];
        if (char.IsHighSurrogate(text[^1])) text = text[..^1] + "x";
        using (var ws = await Ws.ConnectAsync(Mica, $"/echo?key={key}"))
        {
            await ws.SendBinaryAsync(binary);
            var echo = await ws.ReceiveMessageAsync();
            Assert.Equal(WebSocketMessageType.Binary, echo.Type);
            Assert.Equal(binary.Length, echo.Data.Length);
            Assert.True(binary.AsSpan().SequenceEqual(echo.Data), "the 1 MiB binary echo differs");

            await ws.SendTextAsync(text);
            var textEcho = await ws.ReceiveMessageAsync();
            Assert.Equal(WebSocketMessageType.Text, textEcho.Type);
            Assert.True(text == textEcho.Text, "the 1 MiB text echo differs");
            await ws.CloseCleanlyAsync();
        }
        await Ws.AppDisconnectAsync(Mica, Client, key);
        var received = (await Ws.SeenAsync(Client, key)).Where(e => e.Str("type") == "websocket.receive").ToArray();
        Assert.Equal(binary.Length, received[0].Int("length"));
        Assert.Equal(text.EnumerateRunes().Count(), received[1].Int("length"));
    }

    [Fact]
    public async Task A_thousand_messages_sent_back_to_back_are_echoed_in_order()
    {
        const int count = 1000;
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/echo?key={key}");
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
                if (i % 2 == 0) await ws.SendTextAsync($"message {i}");
                else await ws.SendBinaryAsync(BitConverter.GetBytes(i));
        });
        var received = new List<string>();
        for (var i = 0; i < count; i++)
        {
            var message = await ws.ReceiveMessageAsync();
            received.Add(message.Type == WebSocketMessageType.Text ? message.Text
                : message.Type == WebSocketMessageType.Binary ? $"binary {BitConverter.ToInt32(message.Data)}" : message.ToString());
        }
        await sending;
        Assert.Equal(Enumerable.Range(0, count).Select(i => i % 2 == 0 ? $"message {i}" : $"binary {i}"), received);
        await ws.CloseCleanlyAsync();
        await Ws.AppDisconnectAsync(Mica, Client, key);
        Assert.Equal(count, (await Ws.SeenAsync(Client, key)).Count(e => e.Str("type") == "websocket.receive"));
    }

    // ------------------------------------------------------------------ close

    [Theory]
    [InlineData(1000, "")]
    [InlineData(1000, "done")]
    [InlineData(4000, "custom reason ü")]
    [InlineData(4999, "x")]
    public async Task Client_close_reaches_the_app_as_disconnect_with_the_clients_code_and_reason(int code, string reason)
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/echo?key={key}");
        Assert.Equal("before close", (await ws.EchoTextAsync("before close")).Text);
        await ws.CloseCleanlyAsync((WebSocketCloseStatus)code, reason);
        Assert.Equal(WebSocketState.Closed, ws.State);
        Assert.Equal(code, (int?)ws.CloseStatus);   // the server echoed the client's code

        var disconnect = await Ws.AppDisconnectAsync(Mica, Client, key);
        Assert.Equal(code, disconnect.Int("code"));
        Assert.Equal("int", disconnect.Str("code_type"));
        Assert.Equal(reason, disconnect.Str("reason"));
    }

    [Fact]
    public async Task App_close_4001_with_a_reason_reaches_the_client()
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/close-4001?key={key}");
        var close = await ws.ReceiveMessageAsync();
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(4001, close.CloseCode);
        Assert.Equal("bye now", close.CloseDescription);
        Assert.Equal(WebSocketState.CloseReceived, ws.State);
        using var cts = new CancellationTokenSource(Ws.Timeout);
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
        Assert.Equal(WebSocketState.Closed, ws.State);
        await Mica.WaitForStdoutAsync($"WS CLOSED BY APP {key}");
    }

    [Fact]
    public async Task App_returning_after_accept_without_closing_closes_with_1000()
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/return-after-accept?key={key}");
        var close = await ws.ReceiveMessageAsync();
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(1000, close.CloseCode);
        await Mica.WaitForStdoutAsync($"WS RETURNING {key}");
    }

    [Fact]
    public async Task App_raising_after_accept_closes_with_1011_and_logs_the_traceback()
    {
        var key = Keys.New();
        using var ws = await Ws.ConnectAsync(Mica, $"/raise-after-accept?key={key}");
        var close = await ws.ReceiveMessageAsync();
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(1011, close.CloseCode);
        var line = await Mica.WaitForStderrAsync($"boom-after-accept {key}");
        Assert.Contains(Mica.Lines, l => l.Source == Output.Stderr && l.Index < line.Index && l.Text.Contains("Traceback", StringComparison.Ordinal));
    }

    // ------------------------------------------------------------------ denial

    [Fact]
    public async Task Close_before_accept_refuses_the_handshake_with_403()
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, $"/deny-close?key={Keys.New()}");
        Assert.True(raw.Response.Status == 403, $"{raw.Response.Status} {raw.Response.BodyText}");

        using var ws = new ClientWebSocket();
        ws.Options.CollectHttpResponseDetails = true;
        using var cts = new CancellationTokenSource(Ws.Timeout);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(Ws.Url(Mica, $"/deny-close?key={Keys.New()}"), cts.Token));
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, ws.HttpStatusCode);
    }

    [Fact]
    public async Task Returning_without_accepting_refuses_the_handshake_with_403()
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, $"/deny-return?key={Keys.New()}");
        Assert.True(raw.Response.Status == 403, $"{raw.Response.Status} {raw.Response.BodyText}");
    }

    [Fact]
    public async Task Raising_before_accept_answers_500_and_logs_the_traceback()
    {
        var key = Keys.New();
        await using var raw = await RawWebSocket.ConnectAsync(Mica, $"/deny-raise?key={key}");
        Assert.True(raw.Response.Status == 500, $"{raw.Response.Status} {raw.Response.BodyText}");
        await Mica.WaitForStderrAsync($"boom-before-accept {key}");
    }

    [Fact]
    public async Task Http_response_extension_sends_the_apps_status_headers_and_body()
    {
        var key = Keys.New();
        await using var raw = await RawWebSocket.ConnectAsync(Mica, $"/deny-response?key={key}");
        var response = raw.Response;
        Assert.True(response.Status == 401, $"{response.Status} {response.BodyText}");
        Assert.Equal("yes", response.Header("x-denied"));
        Assert.Equal("text/plain", response.Header("content-type"));
        Assert.Equal($"denied by app {key}", response.BodyText);
        Assert.Null(response.Header("sec-websocket-accept"));
        Assert.Null(response.Header("upgrade"));
    }

    [Fact]
    public async Task Unknown_route_closed_before_accept_is_403_and_the_server_keeps_serving()
    {
        await using (var raw = await RawWebSocket.ConnectAsync(Mica, "/no-such-route"))
            Assert.Equal(403, raw.Response.Status);
        using var ws = await Ws.ConnectAsync(Mica, $"/echo?key={Keys.New()}");
        Assert.Equal("still here", (await ws.EchoTextAsync("still here")).Text);
        await ws.CloseCleanlyAsync();
    }
}
