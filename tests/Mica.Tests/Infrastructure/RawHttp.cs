using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mica.Tests.Infrastructure;

/// <summary>An HTTP/1.1 response as read off the wire.</summary>
public sealed record RawResponse(string Version, int Status, string Reason, IReadOnlyList<(string Name, string Value)> Headers, byte[] Body)
{
    public string? Header(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;
    public IEnumerable<string> HeaderValues(string name) => Headers.Where(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value);
    public string BodyText => Encoding.UTF8.GetString(Body);
    public bool IsChunked => Header("transfer-encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true;
}

/// <summary>
/// One TCP connection speaking HTTP/1.1 by hand: exact bytes out, a small response parser in.
/// Every read is bounded by <see cref="Timeout"/>.
/// </summary>
public sealed class RawConnection : IAsyncDisposable, IDisposable
{
    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private byte[] _buffer = new byte[64 * 1024];
    private int _start, _end;

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);
    public IPEndPoint LocalEndPoint => (IPEndPoint)_client.Client.LocalEndPoint!;

    private RawConnection(TcpClient client)
    {
        _client = client;
        _client.NoDelay = true;
        _stream = client.GetStream();
    }

    public static async Task<RawConnection> ConnectAsync(MicaProcess mica) => await ConnectAsync(mica.Host, mica.Port);

    public static async Task<RawConnection> ConnectAsync(string host, int port)
    {
        var client = new TcpClient(AddressFamily.InterNetwork);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await client.ConnectAsync(host, port, cts.Token);
        return new RawConnection(client);
    }

    public Task SendAsync(string text) => SendAsync(Encoding.Latin1.GetBytes(text));

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await _stream.WriteAsync(bytes, cts.Token);
        await _stream.FlushAsync(cts.Token);
    }

    /// <summary>A GET with a Host header; <paramref name="extraHeaders"/> are "Name: value" lines.</summary>
    public static string Get(string target, params string[] extraHeaders) =>
        $"GET {target} HTTP/1.1\r\nHost: localhost\r\n{string.Concat(extraHeaders.Select(h => h + "\r\n"))}\r\n";

    /// <summary>Bytes read from the server so far: unchanged across a failed read means nothing of a response arrived.</summary>
    public long BytesReceived { get; private set; }

    /// <summary>Reads one whole response (content-length, chunked, or to end of stream).</summary>
    public async Task<RawResponse> ReadResponseAsync(string requestMethod = "GET")
    {
        var head = await ReadHeadAsync();
        return head with { Body = await ReadBodyAsync(head, requestMethod) };
    }

    /// <summary>The body of the response whose head was just read (content-length, chunked, or to end of stream).</summary>
    public async Task<byte[]> ReadBodyAsync(RawResponse head, string requestMethod = "GET")
    {
        if (requestMethod == "HEAD" || head.Status is (>= 100 and < 200) or 204 or 304) return [];
        if (head.IsChunked)
        {
            using var all = new MemoryStream();
            while (await ReadChunkAsync() is { Length: > 0 } chunk) all.Write(chunk);
            return all.ToArray();
        }
        if (head.Header("content-length") is { } length) return await ReadExactlyAsync(int.Parse(length, CultureInfo.InvariantCulture));
        return await ReadToEndAsync();
    }

    /// <summary>
    /// One whole response, or null when the server closed (or reset) the connection before sending
    /// a byte of one; a response cut short still throws.
    /// </summary>
    public async Task<RawResponse?> ReadResponseOrCloseAsync(string requestMethod = "GET")
    {
        string? statusLine;
        try { statusLine = await ReadLineAsync(); }
        catch (IOException) when (_end == _start) { return null; }
        if (statusLine is null) return null;
        var head = await ReadHeadAsync(statusLine);
        return head with { Body = await ReadBodyAsync(head, requestMethod) };
    }

    /// <summary>Reads the status line and headers (body left unread).</summary>
    public async Task<RawResponse> ReadHeadAsync() =>
        await ReadHeadAsync(await ReadLineAsync() ?? throw new EndOfStreamException("connection closed before a response"));

    private async Task<RawResponse> ReadHeadAsync(string statusLine)
    {
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

    /// <summary>One chunk of a chunked body; empty for the last chunk (trailers are skipped).</summary>
    public async Task<byte[]> ReadChunkAsync()
    {
        var sizeLine = await ReadLineAsync() ?? throw new EndOfStreamException("connection closed before a chunk");
        var size = int.Parse(sizeLine.Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        if (size == 0)
        {
            while (await ReadLineAsync() is { Length: > 0 }) { }
            return [];
        }
        var data = await ReadExactlyAsync(size);
        if (await ReadLineAsync() != "") throw new InvalidDataException("chunk not followed by CRLF");
        return data;
    }

    /// <summary>True when the server closes the connection (end of stream or reset) within <paramref name="within"/>; data read meanwhile is discarded.</summary>
    public async Task<bool> WaitClosedAsync(TimeSpan within) => await ReadUntilClosedAsync(within) is not null;

    /// <summary>
    /// Everything still unread when the server closes the connection (end of stream or reset)
    /// within <paramref name="within"/>; null if it is still open then.
    /// </summary>
    public async Task<byte[]?> ReadUntilClosedAsync(TimeSpan within)
    {
        using var all = new MemoryStream();
        all.Write(_buffer, _start, _end - _start);
        _start = _end = 0;
        using var cts = new CancellationTokenSource(within);
        var scratch = new byte[16 * 1024];
        try
        {
            int n;
            while ((n = await _stream.ReadAsync(scratch, cts.Token)) > 0) all.Write(scratch, 0, n);
        }
        catch (OperationCanceledException) { return null; }
        catch (IOException) { }
        return all.ToArray();
    }

    /// <summary>Everything until the server closes the connection (bounded by <see cref="Timeout"/>).</summary>
    public async Task<byte[]> ReadToEndAsync()
    {
        using var all = new MemoryStream();
        all.Write(_buffer, _start, _end - _start);
        _start = _end = 0;
        using var cts = new CancellationTokenSource(Timeout);
        var scratch = new byte[16 * 1024];
        int n;
        while ((n = await _stream.ReadAsync(scratch, cts.Token)) > 0)
        {
            BytesReceived += n;
            all.Write(scratch, 0, n);
        }
        return all.ToArray();
    }

    /// <summary>Exactly <paramref name="count"/> bytes (buffered ones first).</summary>
    public async Task<byte[]> ReadExactlyAsync(int count)
    {
        var result = new byte[count];
        var have = Math.Min(count, _end - _start);
        Array.Copy(_buffer, _start, result, 0, have);
        _start += have;
        if (have < count)
        {
            using var cts = new CancellationTokenSource(Timeout);
            await _stream.ReadExactlyAsync(result.AsMemory(have), cts.Token);
            BytesReceived += count - have;
        }
        return result;
    }

    /// <summary>A CRLF-terminated line (latin-1), or null at end of stream before any byte.</summary>
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
            BytesReceived += n;
            if (n == 0)
            {
                if (_end == 0) return null;
                throw new EndOfStreamException($"connection closed inside a line: '{Encoding.Latin1.GetString(_buffer, 0, _end)}'");
            }
            _end += n;
        }
    }

    /// <summary>
    /// True when the server has closed (or reset) the connection and no unread data is left: what
    /// HTTP clients check before reusing an idle keep-alive connection.
    /// </summary>
    public bool IsClosedByPeer()
    {
        if (_end > _start) return false;
        try { return _client.Client.Poll(0, SelectMode.SelectRead) && _client.Client.Available == 0; }
        catch (SocketException) { return true; }
        catch (ObjectDisposedException) { return true; }
    }

    /// <summary>
    /// True when the server sends something, or closes, within <paramref name="within"/>; what it
    /// sent is kept for the next read.
    /// </summary>
    public async Task<bool> WaitForDataAsync(TimeSpan within)
    {
        if (_end > _start) return true;
        _start = _end = 0;
        using var cts = new CancellationTokenSource(within);
        try
        {
            _end = await _stream.ReadAsync(_buffer, cts.Token);
            return true;
        }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>Half-closes the connection: the server reads the end of the request stream, and may still answer.</summary>
    public void CloseOutput() => _client.Client.Shutdown(SocketShutdown.Send);

    public void Abort()
    {
        // RST instead of FIN: the server sees the connection reset.
        _client.Client.LingerState = new LingerOption(true, 0);
        _client.Close();
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
