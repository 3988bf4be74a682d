using System.Net.WebSockets;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>A framework's websocket endpoint (receive_text / send_json, WebSocketDisconnect) served by Mica.</summary>
public abstract class WebSocketFrameworkTests<TServer>(TServer server) : ServerTests<TServer>(server) where TServer : MicaServer
{
    protected abstract string Framework { get; }
    private string DisconnectLine(string key) => $"{Framework.ToUpperInvariant()} DISCONNECT {key} ";

    [Fact]
    public async Task Echo_with_the_python_websockets_client_and_WebSocketDisconnect_carries_the_close_code()
    {
        var key = Keys.New();
        var result = await Ws.RunPythonClientAsync(TimeSpan.FromSeconds(20), "framework", Ws.Url(Mica, $"/ws?key={key}").ToString(), "4002");
        Assert.True(result.ExitCode == 0, result.ToString());
        var replies = result.Json.GetProperty("replies").EnumerateArray().ToArray();
        Assert.Equal(2, replies.Length);
        Assert.Equal((Framework, "hello", "/ws"), (replies[0].Str("framework"), replies[0].Str("echo"), replies[0].Str("path")));
        Assert.Equal("ünïcödé ✓", replies[1].Str("echo"));
        Assert.Equal(4002, result.Json.Int("close_code"));
        var line = await Mica.WaitForStdoutAsync(DisconnectLine(key));
        Assert.EndsWith(DisconnectLine(key) + "4002", line.Text);
    }

    [Fact]
    public async Task Echo_with_the_dotnet_client_and_a_normal_close()
    {
        var key = Keys.New();
        using (var ws = await Ws.ConnectAsync(Mica, $"/ws?key={key}"))
        {
            var reply = await ws.EchoTextAsync("from dotnet");
            Assert.Equal(WebSocketMessageType.Text, reply.Type);
            var json = Json.Parse(reply.Data);
            Assert.Equal((Framework, "from dotnet"), (json.Str("framework"), json.Str("echo")));
            await ws.CloseCleanlyAsync();
            Assert.Equal(WebSocketCloseStatus.NormalClosure, ws.CloseStatus);
        }
        var line = await Mica.WaitForStdoutAsync(DisconnectLine(key));
        Assert.EndsWith(DisconnectLine(key) + "1000", line.Text);
        using var response = await Client.GetAsync("/hello");
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}");
    }

    [Fact]
    public async Task An_unknown_websocket_route_is_refused()
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, "/no-such-ws");
        Assert.True(raw.Response.Status == 403, $"{raw.Response.Status} {raw.Response.BodyText}");
    }
}

public sealed class StarletteWebSocketTests(WsStarletteServer server) : WebSocketFrameworkTests<WsStarletteServer>(server)
{
    protected override string Framework => "starlette";
}

public sealed class FastApiWebSocketTests(WsFastApiServer server) : WebSocketFrameworkTests<WsFastApiServer>(server)
{
    protected override string Framework => "fastapi";
}
