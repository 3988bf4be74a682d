using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;

namespace Mica.Server.Hosting;

/// <summary>
/// <c>--limit-concurrency</c>: at most so many connections open in this worker. A connection
/// beyond is not dropped unanswered: its request gets 503 and <c>Connection: close</c> (what
/// uvicorn answers over its limit), so that clients and proxies see why. An HTTP/2 connection
/// beyond is closed at once: it has no request to answer yet, and would keep streams coming.
/// Connections count once their protocol is known (after the TLS handshake, which has its own
/// timeout); the app never sees a request on a connection beyond the limit.
/// </summary>
internal sealed class ConnectionLimit(int max, bool http2Only)
{
    private static readonly object OverLimitKey = new();
    private int _open;

    /// <summary>Kestrel connection middleware, last in the pipeline.</summary>
    public ConnectionDelegate Enforce(ConnectionDelegate next) => async connection =>
    {
        try
        {
            if (Interlocked.Increment(ref _open) > max)
            {
                if (http2Only || connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol.Span.SequenceEqual("h2"u8) == true)
                    return;
                connection.Items[OverLimitKey] = null;
            }
            await next(connection);
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    };

    /// <summary>The request came on a connection beyond the limit.</summary>
    public static bool IsOverLimit(IFeatureCollection request) =>
        request.Get<IConnectionItemsFeature>()?.Items.ContainsKey(OverLimitKey) == true;
}
