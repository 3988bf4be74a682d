using System.Globalization;
using System.Net;
using System.Net.Sockets;
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
/// and an abort that resets the connection without a close frame. Every read is bounded by
/// <see cref="Timeout"/>.
/// </summary>
public sealed class RawWebSocket : IAsyncDisposable, IDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private byte[] _buffer = new byte[64 * 1024];
    private int _start, _end;

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);
    public IPEndPoint LocalEndPoint => (IPEndPoint)_client.Client.LocalEndPoint!;
    /// <summary>The handshake response: status line and headers (and the body when it is not 101).</summary>
    public RawResponse Response { get; private set; } = null!;
    public string Key { get; } = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));

    private RawWebSocket(TcpClient client)
    {
        _client = client;
        _client.NoDelay = true;
        _stream = client.GetStream();
    }

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
        var client = new TcpClient(AddressFamily.InterNetwork);
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
            await client.ConnectAsync(mica.Host, mica.Port, cts.Token);
        var ws = new RawWebSocket(client);
        try
        {
            var request = $"GET {target} HTTP/1.1\r\nHost: localhost:{mica.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + $"Sec-WebSocket-Key: {ws.Key}\r\nSec-WebSocket-Version: 13\r\n"
                + string.Concat(extraHeaders.Select(h => h + "\r\n")) + "\r\n";
            await ws.WriteAsync(Encoding.Latin1.GetBytes(request));
            ws.Response = await ws.ReadHeadAsync();
            if (ws.Response.Status != 101) ws.Response = ws.Response with { Body = await ws.ReadBodyAsync(ws.Response) };
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
        return WriteAsync(frame);
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
        var head = await ReadExactlyAsync(2);
        var fin = (head[0] & 0x80) != 0;
        var opcode = head[0] & 0x0F;
        if ((head[1] & 0x80) != 0) throw new InvalidDataException("the server sent a masked frame");
        long length = head[1] & 0x7F;
        if (length == 126)
        {
            var ext = await ReadExactlyAsync(2);
            length = ext[0] << 8 | ext[1];
        }
        else if (length == 127)
        {
            var ext = await ReadExactlyAsync(8);
            length = 0;
            foreach (var b in ext) length = length << 8 | b;
        }
        return new WsFrame(fin, opcode, await ReadExactlyAsync(checked((int)length)));
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
    public async Task<bool> WaitClosedAsync(TimeSpan within)
    {
        _start = _end = 0;
        using var cts = new CancellationTokenSource(within);
        var scratch = new byte[16 * 1024];
        try
        {
            while (await _stream.ReadAsync(scratch, cts.Token) > 0) { }
            return true;
        }
        catch (OperationCanceledException) { return false; }
        catch (IOException) { return true; }
    }

    /// <summary>Resets the connection (RST, no close frame, no FIN).</summary>
    public void Abort()
    {
        _client.Client.LingerState = new LingerOption(true, 0);
        _client.Close();
    }

    // ------------------------------------------------------------------ bytes

    private async Task WriteAsync(ReadOnlyMemory<byte> bytes)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await _stream.WriteAsync(bytes, cts.Token);
        await _stream.FlushAsync(cts.Token);
    }

    private async Task<RawResponse> ReadHeadAsync()
    {
        var statusLine = await ReadLineAsync() ?? throw new EndOfStreamException("connection closed before a response");
        var parts = statusLine.Split(' ', 3);
        if (parts.Length < 2 || !parts[0].StartsWith("HTTP/", StringComparison.Ordinal))
            throw new InvalidDataException($"not a status line: '{statusLine}'");
        var headers = new List<(string, string)>();
        while (true)
        {
            var line = await ReadLineAsync() ?? throw new EndOfStreamException("connection closed inside the response head");
            if (line.Length == 0) break;
            var colon = line.IndexOf(':');
            headers.Add((line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }
        return new RawResponse(parts[0], int.Parse(parts[1], CultureInfo.InvariantCulture), parts.Length > 2 ? parts[2] : "", headers, []);
    }

    private async Task<byte[]> ReadBodyAsync(RawResponse head)
    {
        if (head.Status is (>= 100 and < 200) or 204 or 304) return [];
        if (head.IsChunked)
        {
            using var all = new MemoryStream();
            while (true)
            {
                var sizeLine = await ReadLineAsync() ?? throw new EndOfStreamException("connection closed before a chunk");
                var size = int.Parse(sizeLine.Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    while (await ReadLineAsync() is { Length: > 0 }) { }
                    return all.ToArray();
                }
                all.Write(await ReadExactlyAsync(size));
                await ReadLineAsync();
            }
        }
        if (head.Header("content-length") is { } length) return await ReadExactlyAsync(int.Parse(length, CultureInfo.InvariantCulture));
        using var rest = new MemoryStream();
        rest.Write(_buffer, _start, _end - _start);
        _start = _end = 0;
        using var cts = new CancellationTokenSource(Timeout);
        var scratch = new byte[16 * 1024];
        int n;
        while ((n = await _stream.ReadAsync(scratch, cts.Token)) > 0) rest.Write(scratch, 0, n);
        return rest.ToArray();
    }

    private async Task<byte[]> ReadExactlyAsync(int count)
    {
        var result = new byte[count];
        var have = Math.Min(count, _end - _start);
        Array.Copy(_buffer, _start, result, 0, have);
        _start += have;
        if (have < count)
        {
            using var cts = new CancellationTokenSource(Timeout);
            await _stream.ReadExactlyAsync(result.AsMemory(have), cts.Token);
        }
        return result;
    }

    private async Task<string?> ReadLineAsync()
    {
        using var cts = new CancellationTokenSource(Timeout);
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            var lf = span.IndexOf((byte)'\n');
            if (lf >= 0)
            {
                var length = lf > 0 && span[lf - 1] == '\r' ? lf - 1 : lf;
                var line = Encoding.Latin1.GetString(span[..length]);
                _start += lf + 1;
                return line;
            }
            if (_start > 0)
            {
                Array.Copy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length) Array.Resize(ref _buffer, _buffer.Length * 2);
            var n = await _stream.ReadAsync(_buffer.AsMemory(_end), cts.Token);
            if (n == 0)
            {
                if (_end == 0) return null;
                throw new EndOfStreamException($"connection closed inside a line: '{Encoding.Latin1.GetString(_buffer, 0, _end)}'");
            }
            _end += n;
        }
    }

    public void Dispose()
    {
        _stream.Dispose();
        _client.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
