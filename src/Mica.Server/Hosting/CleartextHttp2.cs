using System.Buffers;
using System.IO.Pipelines;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Mica.Server.Hosting;

/// <summary>
/// HTTP/1.1 and cleartext HTTP/2 on one port, both ways a client can ask for the latter:
/// - prior knowledge (<c>curl --http2-prior-knowledge</c>, h2load): the connection opens with
///   HTTP/2's preface;
/// - <c>Upgrade: h2c</c> (RFC 7540 §3.2, <c>curl --http2</c>): an HTTP/1.1 request asking to switch.
///   It is answered "101 Switching Protocols", and the request itself becomes HTTP/2 stream 1.
///
/// On an endpoint with both protocols, Kestrel picks HTTP/2 only for a TLS connection whose ALPN
/// said "h2", and it cannot switch a connection it has started as HTTP/1.1. So this connection
/// middleware looks at the first bytes before Kestrel does and, for HTTP/2, marks the connection
/// the way Kestrel's protocol selection expects. Only that selection (and Kestrel's own
/// Request.Scheme, which Mica does not use) reads the mark: the scopes take TLS from the handshake
/// feature, which stays absent.
/// </summary>
internal static class CleartextHttp2
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();
    private static readonly byte[] H2 = "h2"u8.ToArray();
    private static readonly byte[] SwitchingProtocols = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"u8.ToArray();

    private static readonly byte[] RequestTimeout = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"u8.ToArray();

    /// <summary>A first request head bigger than this is left to Kestrel as HTTP/1.1.</summary>
    private const int MaxUpgradeHead = 8 * 1024;

    /// <param name="idleTimeout">How long the connection may wait for its first byte (--timeout-keep-alive).</param>
    /// <param name="headTimeout">How long the first request's head may take from its first byte (--http1-header-read-timeout).</param>
    public static Func<ConnectionDelegate, ConnectionDelegate> Detect(TimeSpan idleTimeout, TimeSpan headTimeout) => next => async connection =>
    {
        var input = connection.Transport.Input;
        using var deadline = new CancellationTokenSource(idleTimeout);
        var started = false;
        while (true)
        {
            ReadResult read;
            try { read = await input.ReadAsync(deadline.Token); }
            catch (OperationCanceledException)
            {
                // What Kestrel does itself: an idle connection is just closed; a request head not
                // whole within --http1-header-read-timeout gets a 408.
                if (started)
                {
                    await connection.Transport.Output.WriteAsync(RequestTimeout);
                    connection.Abort();
                }
                return;
            }
            var buffer = read.Buffer;
            if (!started && !buffer.IsEmpty)
            {
                started = true;
                deadline.CancelAfter(headTimeout);
            }
            var length = (int)Math.Min(buffer.Length, Preface.Length);
            Span<byte> start = stackalloc byte[Preface.Length];
            buffer.Slice(0, length).CopyTo(start);
            if (start[..length].SequenceEqual(Preface.AsSpan(0, length)))
            {
                if (length < Preface.Length && !read.IsCompleted)
                {
                    input.AdvanceTo(buffer.Start, buffer.End);   // a prefix of the preface: wait for more
                    continue;
                }
                input.AdvanceTo(buffer.Start);
                if (length == Preface.Length) MarkHttp2(connection);
                break;
            }
            // HTTP/1.1: an h2c upgrade needs the whole head of the first request. A head with a
            // bare LF is none (H2cRequest takes CRLF lines only), and may never hold "\r\n\r\n":
            // Kestrel has it at once.
            var reader = new SequenceReader<byte>(buffer);
            var complete = reader.TryReadTo(out ReadOnlySequence<byte> _, "\r\n\r\n"u8, advancePastDelimiter: true);
            if (!complete && buffer.Length < MaxUpgradeHead && !read.IsCompleted && !HasBareLineFeed(buffer))
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            if (complete && H2cRequest.TryParse(buffer.Slice(0, reader.Position), out var stream1))
            {
                input.AdvanceTo(reader.Position);          // the head is now stream 1's HEADERS
                await connection.Transport.Output.WriteAsync(SwitchingProtocols);
                MarkHttp2(connection);
                connection.Transport = new DuplexPipe(InjectAfterSettings(input, stream1), connection.Transport.Output);
                break;
            }
            input.AdvanceTo(buffer.Start);
            break;
        }
        await next(connection);
    };

    private static bool HasBareLineFeed(ReadOnlySequence<byte> buffer)
    {
        byte previous = 0;
        foreach (var segment in buffer)
        {
            var span = segment.Span;
            for (var start = 0; span[start..].IndexOf((byte)'\n') is var found and >= 0; start += found + 1)
                if ((start + found > 0 ? span[start + found - 1] : previous) != '\r') return true;
            if (span.Length > 0) previous = span[^1];
        }
        return false;
    }

    private static void MarkHttp2(ConnectionContext connection)
    {
        var mark = new PriorKnowledge();
        connection.Features.Set<ITlsConnectionFeature>(mark);
        connection.Features.Set<ITlsApplicationProtocolFeature>(mark);
    }

    /// <summary>
    /// What Kestrel reads after an upgrade: the client's preface and first SETTINGS frame, then the
    /// upgraded request as stream 1, then the rest of what the client sends.
    /// </summary>
    private static PipeReader InjectAfterSettings(PipeReader client, byte[] stream1)
    {
        var pipe = new Pipe();
        _ = PumpAsync();
        return pipe.Reader;

        async Task PumpAsync()
        {
            Exception? error = null;
            try
            {
                var before = -1L;   // bytes to pass through before stream 1: preface + SETTINGS frame
                while (true)
                {
                    var read = await client.ReadAsync();
                    var buffer = read.Buffer;
                    if (before < 0 && buffer.Length >= Preface.Length + 9)
                    {
                        Span<byte> header = stackalloc byte[9];
                        buffer.Slice(Preface.Length, 9).CopyTo(header);
                        before = Preface.Length + 9 + (header[0] << 16 | header[1] << 8 | header[2]);
                    }
                    if (before < 0 || buffer.Length < before)
                    {
                        if (read.IsCompleted) break;
                        client.AdvanceTo(buffer.Start, buffer.End);
                        continue;
                    }
                    foreach (var segment in buffer.Slice(0, before)) pipe.Writer.Write(segment.Span);
                    pipe.Writer.Write(stream1);
                    foreach (var segment in buffer.Slice(before)) pipe.Writer.Write(segment.Span);
                    client.AdvanceTo(buffer.End);
                    await pipe.Writer.FlushAsync();
                    break;
                }
                while (true)
                {
                    var read = await client.ReadAsync();
                    foreach (var segment in read.Buffer) pipe.Writer.Write(segment.Span);
                    client.AdvanceTo(read.Buffer.End);
                    var flushed = await pipe.Writer.FlushAsync();
                    if (read.IsCompleted || flushed.IsCompleted) break;
                }
            }
            catch (Exception e)
            {
                error = e;
            }
            await client.CompleteAsync(error);
            await pipe.Writer.CompleteAsync(error);
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;
        public PipeWriter Output => output;
    }

    private sealed class PriorKnowledge : ITlsConnectionFeature, ITlsApplicationProtocolFeature
    {
        public ReadOnlyMemory<byte> ApplicationProtocol => H2;

        public X509Certificate2? ClientCertificate { get => null; set { } }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);
    }
}

/// <summary>An HTTP/1.1 request head asking for <c>Upgrade: h2c</c>, turned into the HTTP/2 HEADERS frame of stream 1.</summary>
internal static partial class H2cRequest
{
    // Headers that belong to the HTTP/1.1 connection, not to the request (RFC 9113 §8.2.2).
    private static readonly HashSet<string> ConnectionHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "connection", "upgrade", "http2-settings", "keep-alive", "proxy-connection", "transfer-encoding", "host",
    };

    // A target's characters: visible ASCII.
    private static readonly SearchValues<char> TargetChars = SearchValues.Create(
        string.Concat(Enumerable.Range(0x21, 0x7E - 0x20).Select(c => (char)c)));

    // A field value's characters (RFC 9110 §5.5): visible ASCII, obs-text, space and tab.
    private static readonly SearchValues<char> ValueChars = SearchValues.Create(
        string.Concat(Enumerable.Range(0x20, 0x7E - 0x1F).Concat(Enumerable.Range(0x80, 0x80)).Append('\t').Select(c => (char)c)));

    /// <summary>
    /// True for a body-less request with <c>Upgrade: h2c</c>, <c>HTTP2-Settings</c> and both in
    /// <c>Connection</c>; <paramref name="frame"/> is then its HEADERS frame (END_STREAM,
    /// END_HEADERS, HPACK literals without indexing). Anything else stays HTTP/1.1, and so does a
    /// head that is not strictly well formed (CRLF lines, token names, one Host...): Kestrel then
    /// answers it as HTTP/1.1 would, and no request it would refuse reaches the app as stream 1.
    /// </summary>
    public static bool TryParse(ReadOnlySequence<byte> head, out byte[] frame)
    {
        frame = [];
        var text = Encoding.Latin1.GetString(head);
        if (text.IndexOf("h2c", StringComparison.OrdinalIgnoreCase) < 0) return false;
        var lines = text.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var requestLine = lines[0].Split(' ');
        if (requestLine.Length != 3 || requestLine[2] != "HTTP/1.1" || !requestLine[1].StartsWith('/')
            || !Http.Token.IsValid(requestLine[0]) || requestLine[1].AsSpan().ContainsAnyExcept(TargetChars)) return false;
        var headers = new List<(string Name, string Value)>();
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0 || !Http.Token.IsValid(line.AsSpan(0, colon))) return false;
            var value = line[(colon + 1)..].Trim([' ', '\t']);
            if (value.AsSpan().ContainsAnyExcept(ValueChars)) return false;
            headers.Add((line[..colon].ToLowerInvariant(), value));
        }
        bool Has(string name, string token) => headers.Any(h => h.Name == name &&
            h.Value.Split(',').Any(v => v.Trim().Equals(token, StringComparison.OrdinalIgnoreCase)));
        if (!Has("upgrade", "h2c") || !Has("connection", "upgrade") || !Has("connection", "http2-settings")
            || headers.All(h => h.Name != "http2-settings") || headers.Count(h => h.Name == "host") != 1
            || !PlainHost().IsMatch(headers.First(h => h.Name == "host").Value)) return false;
        if (headers.Any(h => h.Name == "transfer-encoding" || h.Name == "content-length" && h.Value != "0")) return false;

        var block = new ArrayBufferWriter<byte>();
        Literal(block, ":method", requestLine[0]);
        Literal(block, ":scheme", "http");
        Literal(block, ":path", requestLine[1]);
        if (headers.FirstOrDefault(h => h.Name == "host").Value is { } host) Literal(block, ":authority", host);
        foreach (var (name, value) in headers)
        {
            if (ConnectionHeaders.Contains(name) || name == "te" && value != "trailers") continue;
            Literal(block, name, value);
        }
        if (block.WrittenCount > 16_384) return false;   // beyond one frame of the default size

        frame = new byte[9 + block.WrittenCount];
        frame[0] = (byte)(block.WrittenCount >> 16);
        frame[1] = (byte)(block.WrittenCount >> 8);
        frame[2] = (byte)block.WrittenCount;
        frame[3] = 0x1;          // HEADERS
        frame[4] = 0x1 | 0x4;    // END_STREAM | END_HEADERS
        frame[8] = 1;            // stream 1
        block.WrittenSpan.CopyTo(frame.AsSpan(9));
        return true;
    }

    /// <summary>A host name or address and an optional port: all an upgrade needs (anything else stays HTTP/1.1).</summary>
    [GeneratedRegex(@"^(?:[A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")]
    private static partial Regex PlainHost();

    /// <summary>HPACK "literal header field without indexing, new name", strings not Huffman-coded.</summary>
    private static void Literal(ArrayBufferWriter<byte> block, string name, string value)
    {
        block.Write<byte>([0x00]);
        String(block, name);
        String(block, value);
    }

    private static void String(ArrayBufferWriter<byte> block, string s)
    {
        var bytes = Encoding.Latin1.GetBytes(s);
        // Length as an HPACK integer with a 7-bit prefix (the H bit clear).
        if (bytes.Length < 127) block.Write<byte>([(byte)bytes.Length]);
        else
        {
            block.Write<byte>([0x7F]);
            var rest = bytes.Length - 127;
            while (rest >= 128)
            {
                block.Write<byte>([(byte)(rest % 128 + 128)]);
                rest /= 128;
            }
            block.Write<byte>([(byte)rest]);
        }
        block.Write(bytes);
    }
}
