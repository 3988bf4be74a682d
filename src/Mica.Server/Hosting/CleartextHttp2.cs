using System.Buffers;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Mica.Server.Hosting;

/// <summary>
/// HTTP/1.1 and cleartext HTTP/2 (prior knowledge, as <c>curl --http2-prior-knowledge</c> and h2load
/// speak it) on one port. On an endpoint with both, Kestrel picks HTTP/2 only for a TLS connection
/// whose ALPN said "h2"; so this connection middleware looks at the first bytes and, when they are
/// HTTP/2's connection preface, marks the connection as Kestrel's protocol selection expects. Only
/// that selection (and Kestrel's own Request.Scheme, which Mica does not use) reads the mark: the
/// scopes take TLS from the handshake feature, which stays absent. Nothing is consumed: Kestrel
/// reads the same bytes next.
/// </summary>
internal static class CleartextHttp2
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();
    private static readonly byte[] H2 = "h2"u8.ToArray();

    public static ConnectionDelegate Detect(ConnectionDelegate next) => async connection =>
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var read = await input.ReadAsync();
            var buffer = read.Buffer;
            var length = (int)Math.Min(buffer.Length, Preface.Length);
            Span<byte> start = stackalloc byte[Preface.Length];
            buffer.Slice(0, length).CopyTo(start);
            var matches = start[..length].SequenceEqual(Preface.AsSpan(0, length));
            if (matches && length < Preface.Length && !read.IsCompleted)
            {
                input.AdvanceTo(buffer.Start, buffer.End);   // a prefix of the preface: wait for more
                continue;
            }
            input.AdvanceTo(buffer.Start);
            if (matches && length == Preface.Length)
            {
                var mark = new PriorKnowledge();
                connection.Features.Set<ITlsConnectionFeature>(mark);
                connection.Features.Set<ITlsApplicationProtocolFeature>(mark);
            }
            break;
        }
        await next(connection);
    };

    private sealed class PriorKnowledge : ITlsConnectionFeature, ITlsApplicationProtocolFeature
    {
        public ReadOnlyMemory<byte> ApplicationProtocol => H2;

        public X509Certificate2? ClientCertificate { get => null; set { } }

        public Task<X509Certificate2?> GetClientCertificateAsync(CancellationToken cancellationToken) => Task.FromResult<X509Certificate2?>(null);
    }
}
