using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>ws_app:app (one worker), shared by the websocket tests that do not stop the server.</summary>
public sealed class WsAppServer : MicaServer
{
    public const string AppName = "ws_app:app";
    protected override string App => AppName;
}

/// <summary>ws_app:app with --no-ws: upgrade requests reach the app as http scopes.</summary>
public sealed class NoWsServer : MicaServer
{
    protected override string App => WsAppServer.AppName;
    protected override string[] Options => ["--no-ws"];
}

public sealed class WsStarletteServer : MicaServer
{
    protected override string App => "ws_starlette_app:app";
}

public sealed class WsFastApiServer : MicaServer
{
    protected override string App => "ws_fastapi_app:app";
}

/// <summary>One whole websocket message as a <see cref="ClientWebSocket"/> received it (or the close).</summary>
public sealed record WsMessage(WebSocketMessageType Type, byte[] Data, WebSocketCloseStatus? CloseStatus, string? CloseDescription)
{
    public string Text => Encoding.UTF8.GetString(Data);
    public int? CloseCode => CloseStatus is { } s ? (int)s : null;
    public override string ToString() => Type == WebSocketMessageType.Close
        ? $"Close {CloseCode} '{CloseDescription}'"
        : $"{Type} ({Data.Length} bytes){(Type == WebSocketMessageType.Text && Data.Length < 200 ? ": " + Text : "")}";
}

/// <summary>Bounded helpers around <see cref="ClientWebSocket"/>, the app's records and the Python client.</summary>
public static class Ws
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    public static Uri Url(MicaProcess mica, string target) => new($"ws://{mica.Host}:{mica.Port}{target}");

    /// <summary>A connected <see cref="ClientWebSocket"/> (handshake bounded by <see cref="Timeout"/>).</summary>
    public static async Task<ClientWebSocket> ConnectAsync(MicaProcess mica, string target, Action<ClientWebSocketOptions>? configure = null)
    {
        var ws = new ClientWebSocket();
        configure?.Invoke(ws.Options);
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await ws.ConnectAsync(Url(mica, target), cts.Token);
        }
        catch
        {
            ws.Dispose();
            throw;
        }
        return ws;
    }

    public static async Task SendTextAsync(this WebSocket ws, string text, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, cts.Token);
    }

    public static async Task SendBinaryAsync(this WebSocket ws, byte[] data, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        await ws.SendAsync(data, WebSocketMessageType.Binary, true, cts.Token);
    }

    /// <summary>The next whole message (fragments joined), or the close; bounded.</summary>
    public static async Task<WsMessage> ReceiveMessageAsync(this WebSocket ws, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? Timeout);
        using var all = new MemoryStream();
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var result = await ws.ReceiveAsync(buffer, cts.Token);
            if (result.MessageType == WebSocketMessageType.Close)
                return new WsMessage(WebSocketMessageType.Close, [], result.CloseStatus, result.CloseStatusDescription);
            all.Write(buffer, 0, result.Count);
            if (result.EndOfMessage) return new WsMessage(result.MessageType, all.ToArray(), null, null);
        }
    }

    /// <summary>Sends <paramref name="text"/> and returns the next message (the echo).</summary>
    public static async Task<WsMessage> EchoTextAsync(this WebSocket ws, string text)
    {
        await ws.SendTextAsync(text);
        return await ws.ReceiveMessageAsync();
    }

    /// <summary>A clean close from the client (bounded); returns the status the server answered.</summary>
    public static async Task CloseCleanlyAsync(this WebSocket ws, WebSocketCloseStatus status = WebSocketCloseStatus.NormalClosure, string? reason = null)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await ws.CloseAsync(status, reason, cts.Token);
    }

    /// <summary>Waits for the app's "WS DISCONNECT key code reason" line; returns the code it printed.</summary>
    public static async Task<string> WaitForAppDisconnectAsync(MicaProcess mica, string key, TimeSpan? timeout = null)
    {
        var line = await mica.WaitForStdoutAsync($"WS DISCONNECT {key} ", timeout ?? Timeout);
        return line.Text[(line.Text.IndexOf($"WS DISCONNECT {key} ", StringComparison.Ordinal) + $"WS DISCONNECT {key} ".Length)..];
    }

    /// <summary>The events ws_app recorded for <paramref name="key"/> (GET /seen).</summary>
    public static async Task<JsonElement[]> SeenAsync(HttpClient client, string key) =>
        [.. (await client.GetJsonAsync($"/seen?key={key}")).EnumerateArray()];

    /// <summary>The websocket.disconnect the app recorded for <paramref name="key"/>, waiting for it (bounded).</summary>
    public static async Task<JsonElement> AppDisconnectAsync(MicaProcess mica, HttpClient client, string key)
    {
        await WaitForAppDisconnectAsync(mica, key);
        var seen = await SeenAsync(client, key);
        var disconnects = seen.Where(e => e.Str("type") == "websocket.disconnect").ToArray();
        Assert.True(disconnects.Length == 1, $"expected one websocket.disconnect, the app saw: {string.Join(", ", seen)}");
        Assert.Equal("websocket.disconnect", seen[^1].Str("type"));
        return disconnects[0];
    }

    public sealed record PythonResult(int ExitCode, string Stdout, string Stderr)
    {
        public JsonElement Json => Infrastructure.Json.Parse(Stdout.Trim().Split('\n')[^1]);
        public override string ToString() => $"exit {ExitCode}\nstdout: {Stdout}\nstderr: {Stderr}";
    }

    /// <summary>
    /// Runs tests/apps/ws_client.py (Python's websockets library) with /usr/bin/python3, killed after
    /// <paramref name="timeout"/>. Its last stdout line is a JSON report.
    /// </summary>
    public static async Task<PythonResult> RunPythonClientAsync(TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(MicaProcess.Python)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = MicaProcess.AppsDir,
        };
        psi.ArgumentList.Add(Path.Combine(MicaProcess.AppsDir, "ws_client.py"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            throw new TimeoutException($"ws_client.py {string.Join(' ', args)} did not finish within {timeout.TotalSeconds:0.#} s\n"
                + $"stdout: {await stdout}\nstderr: {await stderr}");
        }
        return new PythonResult(p.ExitCode, await stdout, await stderr);
    }
}
