using System.Buffers;
using System.Text;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Http;

/// <summary>
/// The request target as the client sent it, split into path and query: what the ASGI scope, the
/// WSGI environ and the static routes start from. Kestrel's own <c>Path</c> is not used: it keeps
/// <c>%2F</c> encoded and removes dot segments, while the interfaces want the target as sent.
/// </summary>
internal readonly ref struct RequestTarget
{
    /// <summary>The path, still percent-encoded.</summary>
    public ReadOnlySpan<char> RawPath { get; }
    /// <summary>The query without its '?'; empty when there is none.</summary>
    public ReadOnlySpan<char> Query { get; }
    public bool HasQuery { get; }

    private RequestTarget(ReadOnlySpan<char> rawPath, ReadOnlySpan<char> query, bool hasQuery)
    {
        RawPath = rawPath;
        Query = query;
        HasQuery = hasQuery;
    }

    public static RequestTarget Of(IHttpRequestFeature request)
    {
        var target = request.RawTarget;
        // Absolute-form ("http://host/path"): the path and query Kestrel took from it. The other
        // forms are given as sent: '*' (OPTIONS) and a CONNECT's "host:port", as uvicorn and
        // Granian do, so that the app cannot take them for "/".
        if (target.Length > 0 && target[0] != '/' && target.Contains("://", StringComparison.Ordinal))
            target = request.Path + request.QueryString;
        if (target.Length == 0) target = "/";
        var q = target.IndexOf('?');
        return q < 0 ? new RequestTarget(target, [], false) : new RequestTarget(target.AsSpan(0, q), target.AsSpan(q + 1), true);
    }

    // C0 controls and DEL: never part of a URI (RFC 3986), so never of a valid request target.
    private static readonly SearchValues<char> Controls = SearchValues.Create(
        string.Concat(Enumerable.Range(0, 0x20).Append(0x7F).Select(c => (char)c)));

    /// <summary>
    /// The target as sent holds a control character, which Kestrel lets through (a tab, an escape
    /// that would go raw into the access log...): such a request is refused (RFC 9112 §3).
    /// </summary>
    public static bool HasControlCharacters(string rawTarget) => rawTarget.AsSpan().ContainsAny(Controls);

    public delegate void PathAction<TState>(ReadOnlySpan<byte> raw, Span<byte> decoded, TState state);

    /// <summary>
    /// Calls <paramref name="action"/> with the path's UTF-8 bytes as sent and percent-decoded,
    /// in a stack or pooled buffer (no allocation for the usual short path).
    /// </summary>
    public void WithPathBytes<TState>(TState state, PathAction<TState> action)
    {
        var rawLength = Encoding.UTF8.GetByteCount(RawPath);
        var rented = rawLength > 512 ? ArrayPool<byte>.Shared.Rent(rawLength * 2) : null;
        var buffer = rented ?? stackalloc byte[1024];
        try
        {
            var raw = buffer[..rawLength];
            Encoding.UTF8.GetBytes(RawPath, raw);
            var decoded = buffer.Slice(rawLength, rawLength);
            action(raw, decoded[..PercentDecode(raw, decoded)], state);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The path percent-decoded as the scopes give it (UTF-8, an invalid sequence replaced), for
    /// what C# matches or shows: static routes and the access log.
    /// </summary>
    public string DecodedPath()
    {
        if (RawPath.IndexOf('%') < 0) return RawPath.ToString();
        var text = "";
        WithPathBytes(0, (_, decoded, _) => text = Encoding.UTF8.GetString(decoded));
        return text;
    }

    /// <summary>%XX → byte; a malformed escape is kept as it is (as urllib.parse.unquote does).</summary>
    internal static int PercentDecode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var n = 0;
        for (var i = 0; i < source.Length; i++)
        {
            var c = source[i];
            if (c == '%' && i + 2 < source.Length
                && HexValue(source[i + 1]) is var hi and >= 0 && HexValue(source[i + 2]) is var lo and >= 0)
            {
                destination[n++] = (byte)(hi << 4 | lo);
                i += 2;
            }
            else destination[n++] = c;
        }
        return n;
    }

    private static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };
}
