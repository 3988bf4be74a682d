using System.Net.WebSockets;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Websockets and the server's life: --no-ws, a graceful stop (SIGTERM) and a rolling restart (SIGHUP).</summary>
public sealed class WebSocketServerTests
{
    [Fact]
    public async Task No_ws_passes_an_upgrade_request_to_the_app_as_an_http_scope()
    {
        await using var mica = await MicaProcess.StartAsync(WsAppServer.AppName, ["--no-ws"]);
        await using (var raw = await RawWebSocket.ConnectAsync(mica, $"/echo?key={Keys.New()}"))
        {
            Assert.True(raw.Response.Status == 426, $"{raw.Response.Status} {raw.Response.BodyText}");
            Assert.Equal("http scope: /echo", raw.Response.BodyText);
            Assert.Null(raw.Response.Header("sec-websocket-accept"));
        }
        using var ws = new ClientWebSocket();
        using var cts = new CancellationTokenSource(Ws.Timeout);
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(Ws.Url(mica, "/echo"), cts.Token));
        Assert.Equal(0, await mica.StopAsync());
    }

    /// <summary>
    /// SIGTERM with a websocket open: a close frame 1001 reaches the client (ReceiveAsync returns a
    /// close, it does not throw as on a reset), the client answers it as clients usually do (with
    /// the code received, RFC 6455 5.5.1), the app sees disconnect 1001 and the master exits 0.
    /// </summary>
    [Fact]
    public async Task Sigterm_closes_open_websockets_with_1001_and_exits_0()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync(WsAppServer.AppName);
        using var ws = await Ws.ConnectAsync(mica, $"/echo?key={key}");
        Assert.Equal("before the stop", (await ws.EchoTextAsync("before the stop")).Text);

        mica.Signal(Libc.SIGTERM);
        var close = await ws.ReceiveMessageAsync(TimeSpan.FromSeconds(15));
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(1001, close.CloseCode);
        using (var cts = new CancellationTokenSource(Ws.Timeout))
            await ws.CloseOutputAsync(close.CloseStatus!.Value, close.CloseDescription, cts.Token);

        Assert.StartsWith("1001", await Ws.WaitForAppDisconnectAsync(mica, key, TimeSpan.FromSeconds(15)));
        Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        await mica.AssertNoOrphansAsync();
    }

    /// <summary>
    /// The server closes because it is going away: the app is told 1001 even when the client's
    /// reply to the close frame carries another code (1000, which RFC 6455 allows).
    /// </summary>
    [Fact]
    public async Task Sigterm_tells_the_app_1001_even_when_the_client_answers_the_close_with_1000()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync(WsAppServer.AppName);
        using var ws = await Ws.ConnectAsync(mica, $"/echo?key={key}");
        Assert.Equal("before the stop", (await ws.EchoTextAsync("before the stop")).Text);

        mica.Signal(Libc.SIGTERM);
        var close = await ws.ReceiveMessageAsync(TimeSpan.FromSeconds(15));
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(1001, close.CloseCode);
        using (var cts = new CancellationTokenSource(Ws.Timeout))
            await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "ok", cts.Token);

        Assert.StartsWith("1001", await Ws.WaitForAppDisconnectAsync(mica, key, TimeSpan.FromSeconds(15)));
        Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(20)));
    }

    /// <summary>A client that never answers the 1001 close frame does not keep the server from stopping.</summary>
    [Fact]
    public async Task Sigterm_with_a_client_that_never_answers_the_close_still_exits_0()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync(WsAppServer.AppName);
        await using var raw = await RawWebSocket.ConnectAsync(mica, $"/echo?key={key}");
        Assert.Equal(101, raw.Response.Status);
        await raw.SendTextAsync("before the stop");
        Assert.Equal("before the stop", (await raw.ReceiveDataOrCloseAsync()).Text);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        mica.Signal(Libc.SIGTERM);
        var close = await raw.ReceiveDataOrCloseAsync();
        Assert.Equal((WsFrame.Close, 1001), (close.Opcode, close.CloseCode));
        // No reply: the server must give up on the closing handshake by itself.
        Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(40)));
        Assert.True(await raw.WaitClosedAsync(TimeSpan.FromSeconds(5)), "the connection is still open after the master exited");
        await Ws.WaitForAppDisconnectAsync(mica, key, TimeSpan.FromSeconds(1));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(35), $"stopping took {clock.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task Sighup_closes_the_old_workers_websockets_with_1001_and_new_ones_reach_the_new_worker()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync(WsAppServer.AppName);
        using var old = await Ws.ConnectAsync(mica, $"/scope?key={key}");
        var oldPid = Json.Parse((await old.ReceiveMessageAsync()).Data).Int("pid");
        Assert.Equal(mica.WorkerPid, oldPid);

        var mark = mica.Mark();
        mica.Signal(Libc.SIGHUP);
        var close = await old.ReceiveMessageAsync(TimeSpan.FromSeconds(20));
        Assert.True(close.Type == WebSocketMessageType.Close, $"expected a close, got {close}");
        Assert.Equal(1001, close.CloseCode);
        using (var cts = new CancellationTokenSource(Ws.Timeout))
            await old.CloseOutputAsync(close.CloseStatus!.Value, close.CloseDescription, cts.Token);
        Assert.StartsWith("1001", await Ws.WaitForAppDisconnectAsync(mica, key, TimeSpan.FromSeconds(15)));

        var replacement = (await mica.WaitForReadyWorkersAsync(1, TimeSpan.FromSeconds(30), mark)).Single();
        Assert.NotEqual(oldPid, replacement.Pid);
        await mica.WaitForStderrAsync($"(pid {oldPid}) stopped", TimeSpan.FromSeconds(20), mark);

        using var fresh = await Ws.ConnectAsync(mica, $"/scope?key={Keys.New()}");
        Assert.Equal(replacement.Pid, Json.Parse((await fresh.ReceiveMessageAsync()).Data).Int("pid"));
        using var echo = await Ws.ConnectAsync(mica, $"/echo?key={Keys.New()}");
        Assert.Equal("after the restart", (await echo.EchoTextAsync("after the restart")).Text);
        await echo.CloseCleanlyAsync();
        await fresh.CloseCleanlyAsync();
        Assert.Equal(0, await mica.StopAsync());
    }
}
