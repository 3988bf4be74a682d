using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Mica.Tests.Infrastructure;

/// <summary>One websocket frame as read off the wire (payload unmasked).</summary>
public sealed record WsFrame(bool Fin, int Opcode, byte[] Payload)
{
    public const int Continuation = 0, TextOpcode = 1, Binary = 2, Close = 8, Ping = 9, Pong = 10;
    public string Text => Encoding.UTF8.GetString(Payload);
    /// <summary>The status code of a close frame (1005 when it has none).</summary>
    public int CloseCode => Payload.Length >= 2 ? Payload[0] << 8 | Payload[1] : 1005;
    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : "";
}

/// <summary>
/// A websocket client written by hand over one TCP connection (RFC 6455): the exact handshake
/// request, the raw response head (status, every header, the body of a refusal), frames in and out,
/// and an abort that resets the connection without a close frame. The bytes go through a
/// <see cref="RawConnection"/>, so every read is bounded by its timeout.
/// </summary>
public sealed class RawWebSocket : IAsyncDisposable, IDisposable
{
    private readonly RawConnection _connection;

    public IPEndPoint LocalEndPoint => _connection.LocalEndPoint;
    /// <summary>The handshake response: status line and headers (and the body when it is not 101).</summary>
    public RawResponse Response { get; private set; } = null!;
    public string Key { get; } = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));

    private RawWebSocket(RawConnection connection) => _connection = connection;

    /// <summary>The value a server must answer in Sec-WebSocket-Accept for <paramref name="key"/>.</summary>
    public static string AcceptFor(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));

    /// <summary>
    /// Connects and sends an upgrade request for <paramref name="target"/> with
    /// <paramref name="extraHeaders"/> ("Name: value" lines); reads the response head, and the body
    /// when the status is not 101. Check <see cref="Response"/>.
    /// </summary>
    public static async Task<RawWebSocket> ConnectAsync(MicaProcess mica, string target, params string[] extraHeaders)
    {
        var ws = new RawWebSocket(await RawConnection.ConnectAsync(mica));
        try
        {
            var request = $"GET {target} HTTP/1.1\r\nHost: localhost:{mica.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + $"Sec-WebSocket-Key: {ws.Key}\r\nSec-WebSocket-Version: 13\r\n"
                + string.Concat(extraHeaders.Select(h => h + "\r\n")) + "\r\n";
            await ws._connection.SendAsync(request);
            ws.Response = await ws._connection.ReadHeadAsync();
            if (ws.Response.Status != 101) ws.Response = ws.Response with { Body = await ws._connection.ReadBodyAsync(ws.Response) };
            return ws;
        }
        catch
        {
            ws.Dispose();
            throw;
        }
    }

    // ------------------------------------------------------------------ frames

    /// <summary>Sends one masked frame (as a client must).</summary>
    public Task SendFrameAsync(int opcode, ReadOnlySpan<byte> payload, bool fin = true)
    {
        var header = new List<byte> { (byte)((fin ? 0x80 : 0) | opcode) };
        if (payload.Length < 126) header.Add((byte)(0x80 | payload.Length));
        else if (payload.Length <= ushort.MaxValue)
        {
            header.Add(0x80 | 126);
            header.Add((byte)(payload.Length >> 8));
            header.Add((byte)payload.Length);
        }
        else
        {
            header.Add(0x80 | 127);
            for (var shift = 56; shift >= 0; shift -= 8) header.Add((byte)((long)payload.Length >> shift));
        }
        var mask = RandomNumberGenerator.GetBytes(4);
        header.AddRange(mask);
        var frame = new byte[header.Count + payload.Length];
        header.CopyTo(frame);
        for (var i = 0; i < payload.Length; i++) frame[header.Count + i] = (byte)(payload[i] ^ mask[i & 3]);
        return _connection.SendAsync(frame);
    }

    public Task SendTextAsync(string text) => SendFrameAsync(WsFrame.TextOpcode, Encoding.UTF8.GetBytes(text));

    public Task SendCloseAsync(int code, string reason = "")
    {
        var reasonBytes = Encoding.UTF8.GetBytes(reason);
        var payload = new byte[2 + reasonBytes.Length];
        payload[0] = (byte)(code >> 8);
        payload[1] = (byte)code;
        reasonBytes.CopyTo(payload, 2);
        return SendFrameAsync(WsFrame.Close, payload);
    }

    /// <summary>The next frame from the server (which must not be masked).</summary>
    public async Task<WsFrame> ReceiveFrameAsync()
    {
        var head = await _connection.ReadExactlyAsync(2);
        var fin = (head[0] & 0x80) != 0;
        var opcode = head[0] & 0x0F;
        if ((head[1] & 0x80) != 0) throw new InvalidDataException("the server sent a masked frame");
        long length = head[1] & 0x7F;
        if (length == 126)
        {
            var ext = await _connection.ReadExactlyAsync(2);
            length = ext[0] << 8 | ext[1];
        }
        else if (length == 127)
        {
            var ext = await _connection.ReadExactlyAsync(8);
            length = 0;
            foreach (var b in ext) length = length << 8 | b;
        }
        return new WsFrame(fin, opcode, await _connection.ReadExactlyAsync(checked((int)length)));
    }

    /// <summary>The next data frame, answering pings on the way.</summary>
    public async Task<WsFrame> ReceiveDataOrCloseAsync()
    {
        while (true)
        {
            var frame = await ReceiveFrameAsync();
            if (frame.Opcode == WsFrame.Ping) await SendFrameAsync(WsFrame.Pong, frame.Payload);
            else if (frame.Opcode != WsFrame.Pong) return frame;
        }
    }

    /// <summary>True when the server closes the TCP connection (end of stream or reset) within <paramref name="within"/>.</summary>
    public Task<bool> WaitClosedAsync(TimeSpan within) => _connection.WaitClosedAsync(within);

    /// <summary>Resets the connection (RST, no close frame, no FIN).</summary>
    public void Abort() => _connection.Abort();

    public void Dispose() => _connection.Dispose();

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}
