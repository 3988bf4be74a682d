using System.Net;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Mica.Server.Http;

/// <summary>The Host a trusted proxy forwarded, as WSGI's <c>SERVER_NAME</c> and <c>SERVER_PORT</c>.</summary>
internal readonly record struct ForwardedServer(string Name, int Port);

/// <summary>What a request's proxy headers say; a null member leaves the connection's own value.</summary>
internal readonly record struct Forwarding(IPAddress? Client, int ClientPort, string? Scheme, string? Host)
{
    public static readonly Forwarding None = default;
}

/// <summary>
/// <c>--proxy-headers</c> (uvicorn's option, on by default) with <c>--forwarded-allow-ips</c>
/// (<see cref="TrustedProxies"/>): when the peer is trusted, the client address, the scheme and the
/// Host a reverse proxy forwarded replace the connection's own, once per request, in Kestrel's
/// features (<see cref="IHttpConnectionFeature.RemoteIpAddress"/>, <see cref="IHttpRequestFeature.Scheme"/>,
/// the Host header), before the request becomes an exchange: the ASGI and RSGI scopes and the WSGI
/// environ are built from those features and need no code of their own. Kestrel resets the
/// features for the next request.
/// <para>
/// Headers, from a trusted peer only (an untrusted peer's are ignored entirely and reach the app as sent):
/// <list type="bullet">
/// <item><c>X-Forwarded-For</c>, <c>X-Forwarded-Proto</c>, <c>X-Forwarded-Host</c>: comma-separated
/// lists, one item per proxy, each proxy appending its own; items are paired from the right
/// (the nearest proxy's last).</item>
/// <item>RFC 7239 <c>Forwarded</c> (<c>for=</c>, <c>proto=</c>, <c>host=</c>), one element per proxy,
/// used only when none of the <c>X-Forwarded-*</c> headers is present. The X- headers win because
/// they are what nginx, HAProxy, Traefik, Envoy, Caddy and cloud load balancers set, and they pass
/// a client's own <c>Forwarded</c> through untouched: letting it win would let any client behind
/// them choose its address. (ASP.NET's ForwardedHeadersMiddleware, uvicorn and Granian's wrappers
/// read only the X- headers; hypercorn reads one kind or the other, by configuration.)</item>
/// </list>
/// The walk starts at the nearest proxy's item and moves left while the address just learnt is
/// trusted too, so the client is the right-most address that is not a trusted proxy (uvicorn's rule;
/// with <c>*</c>, or when every address is trusted, the left-most). Each item applied sets the
/// client, and its proto and host when it has them. An item whose address is missing, <c>unknown</c>,
/// obfuscated (<c>_hidden</c>) or malformed ends the walk: who sent the items left of it is unknown.
/// A malformed proto or host is ignored; a malformed <c>Forwarded</c> element ends the walk.
/// </para>
/// <para>
/// The client's port is the item's when it has one (<c>"[2001:db8::1]:4711"</c>), else 0, as in
/// uvicorn. The proto (http, https, ws, wss; any case) sets the scheme: http or https, which the
/// scopes turn into ws or wss for websockets. The host replaces the request's Host header (and
/// HTTP/2's authority), and for WSGI also <c>SERVER_NAME</c> and <c>SERVER_PORT</c> (its port, else
/// the scheme's default). The ASGI and RSGI <c>server</c> stay the listening socket's address, as the
/// ASGI spec defines it and as uvicorn and hypercorn leave it.
/// </para>
/// </summary>
internal sealed class ForwardedHeaders(TrustedProxies? trusted)
{
    private const string Http = "http", Https = "https";

    /// <summary>
    /// Once per request, on the Kestrel thread that parsed it: sets the scheme (the connection's, or
    /// the forwarded one) and, for a trusted peer's proxy headers, the client and Host. Returns the
    /// forwarded Host as WSGI's server name and port, if one was applied.
    /// </summary>
    public ForwardedServer? Apply(IFeatureCollection features)
    {
        var request = features.GetRequiredFeature<IHttpRequestFeature>();
        // Kestrel's own Scheme follows an HTTP/2 request's ":scheme" (AllowAlternateSchemes) and
        // CleartextHttp2's TLS mark; the app's is the connection's, unless a trusted proxy says otherwise.
        request.Scheme = features.Get<ITlsHandshakeFeature>() is null ? Http : Https;
        if (trusted is null) return null;

        var headers = request.Headers;
        var forwardedFor = headers["X-Forwarded-For"];
        var forwardedProto = headers["X-Forwarded-Proto"];
        var forwardedHost = headers["X-Forwarded-Host"];
        var forwarded = headers["Forwarded"];
        if (forwardedFor.Count == 0 && forwardedProto.Count == 0 && forwardedHost.Count == 0 && forwarded.Count == 0) return null;

        var connection = features.GetRequiredFeature<IHttpConnectionFeature>();
        var result = Resolve(connection.RemoteIpAddress, trusted, forwardedFor, forwardedProto, forwardedHost, forwarded);
        if (result.Client is { } client)
        {
            connection.RemoteIpAddress = client;
            connection.RemotePort = result.ClientPort;
        }
        if (result.Scheme is { } scheme) request.Scheme = scheme;
        if (result.Host is not { } host || !TryParseHost(host, out var name, out var port)) return null;
        headers.Host = host;
        return new ForwardedServer(name.ToString(), port >= 0 ? port : request.Scheme == Https ? 443 : 80);
    }

    /// <summary>What the proxy headers of a request from <paramref name="peer"/> (null: a Unix socket's) say.</summary>
    internal static Forwarding Resolve(IPAddress? peer, TrustedProxies trusted,
        StringValues forwardedFor, StringValues forwardedProto, StringValues forwardedHost, StringValues forwarded)
    {
        if (!trusted.Trusts(peer)) return Forwarding.None;
        var result = Forwarding.None;
        if (forwardedFor.Count > 0 || forwardedProto.Count > 0 || forwardedHost.Count > 0)
        {
            var fors = new FromRight(forwardedFor);
            var protos = new FromRight(forwardedProto);
            var hosts = new FromRight(forwardedHost);
            while (true)
            {
                var hop = new Hop();
                hop.HasFor = fors.Next(out hop.For);
                hop.HasProto = protos.Next(out hop.Proto);
                hop.HasHost = hosts.Next(out hop.Host);
                if (!(hop.HasFor || hop.HasProto || hop.HasHost) || !Take(hop, trusted, ref result)) return result;
            }
        }
        var text = forwarded.ToString();   // several lines: joined with ','
        var elements = SplitElements(text);
        for (var i = elements.Count - 1; i >= 0; i--)
            if (!TryParseElement(text.AsSpan(elements[i]), out var hop) || !Take(hop, trusted, ref result)) return result;
        return result;
    }

    /// <summary>One proxy's item: applies it to <paramref name="result"/>; true to go on to the next item left.</summary>
    private static bool Take(in Hop hop, TrustedProxies trusted, ref Forwarding result)
    {
        if (hop.HasProto && ParseProto(hop.Proto) is { } scheme) result = result with { Scheme = scheme };
        if (hop.HasHost && TryParseHost(hop.Host, out _, out _)) result = result with { Host = hop.Host.ToString() };
        if (!hop.HasFor || !TryParseNode(hop.For, out var address, out var port)) return false;
        result = result with { Client = address, ClientPort = port };
        return trusted.Trusts(address);
    }

    /// <summary>One proxy's values; a Has flag is false when that header had no item for it.</summary>
    private ref struct Hop
    {
        public ReadOnlySpan<char> For, Proto, Host;
        public bool HasFor, HasProto, HasHost;
    }

    /// <summary>The items of a comma-separated header, possibly on several lines, last first.</summary>
    private struct FromRight(StringValues values)
    {
        private const int LineNotStarted = int.MinValue;
        private int _line = values.Count - 1;
        private int _end = LineNotStarted;   // the current line's unread part ends here; -1: line done

        public bool Next(out ReadOnlySpan<char> item)
        {
            while (_line >= 0)
            {
                var text = (values[_line] ?? "").AsSpan();
                if (_end == LineNotStarted) _end = text.Length;
                if (_end >= 0)
                {
                    var comma = text[.._end].LastIndexOf(',');
                    item = text[(comma + 1).._end].Trim();
                    _end = comma;
                    return true;
                }
                _line--;
                _end = LineNotStarted;
            }
            item = default;
            return false;
        }
    }

    /// <summary>http/https/ws/wss (any case) as the scheme it means for the request: http or https.</summary>
    internal static string? ParseProto(ReadOnlySpan<char> proto)
    {
        if (proto.Equals(Http, StringComparison.OrdinalIgnoreCase) || proto.Equals("ws", StringComparison.OrdinalIgnoreCase)) return Http;
        if (proto.Equals(Https, StringComparison.OrdinalIgnoreCase) || proto.Equals("wss", StringComparison.OrdinalIgnoreCase)) return Https;
        return null;
    }

    /// <summary>
    /// A forwarded node: an IPv4 address, an IPv6 one (bare, or in brackets), with an optional
    /// <c>:port</c> after IPv4 or brackets (an obfuscated port, <c>_x</c>, counts as none: 0). False
    /// for <c>unknown</c>, obfuscated names (<c>_hidden</c>) and anything malformed.
    /// </summary>
    internal static bool TryParseNode(ReadOnlySpan<char> node, out IPAddress address, out int port)
    {
        port = 0;
        address = IPAddress.None;
        ReadOnlySpan<char> host, portText = default;
        var hasPort = false;
        if (node.StartsWith('['))
        {
            var close = node.IndexOf(']');
            if (close < 0) return false;
            host = node[1..close];
            if (!host.Contains(':')) return false;   // brackets are for IPv6
            var rest = node[(close + 1)..];
            if (!rest.IsEmpty)
            {
                if (rest[0] != ':') return false;
                hasPort = true;
                portText = rest[1..];
            }
        }
        else if (node.IndexOf(':') is var colon and >= 0 && node.LastIndexOf(':') == colon)
        {
            host = node[..colon];   // IPv4 with a port
            hasPort = true;
            portText = node[(colon + 1)..];
        }
        else host = node;           // IPv4, or bare IPv6
        if (!Addresses.TryParse(host, out address)) return false;
        if (!hasPort) return true;
        return IsObfuscated(portText) || TryParsePort(portText, out port);
    }

    private static bool IsObfuscated(ReadOnlySpan<char> text)
    {
        if (text.Length < 2 || text[0] != '_') return false;
        foreach (var c in text[1..])
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-')) return false;
        return true;
    }

    private static bool TryParsePort(ReadOnlySpan<char> text, out int port)
    {
        port = 0;
        if (text.Length is 0 or > 5) return false;
        foreach (var c in text)
        {
            if (!char.IsAsciiDigit(c)) return false;
            port = port * 10 + (c - '0');
        }
        return port <= 65535;
    }

    /// <summary>
    /// A forwarded Host: <c>name[:port]</c> or <c>[IPv6][:port]</c>, the name made of the characters
    /// RFC 3986 allows in a host (letters, digits, <c>-._~%!$&amp;'()*+=</c>). <paramref name="port"/> is -1 when absent.
    /// </summary>
    internal static bool TryParseHost(ReadOnlySpan<char> host, out ReadOnlySpan<char> name, out int port)
    {
        name = default;
        port = -1;
        if (host.IsEmpty || host.Length > 1024) return false;
        ReadOnlySpan<char> portText;
        if (host[0] == '[')
        {
            var close = host.IndexOf(']');
            if (close < 0 || !host[1..close].Contains(':') || !Addresses.TryParse(host[1..close], out _)) return false;
            name = host[1..close];
            var rest = host[(close + 1)..];
            if (rest.IsEmpty) return true;
            if (rest[0] != ':') return false;
            portText = rest[1..];
        }
        else
        {
            var colon = host.IndexOf(':');
            name = colon < 0 ? host : host[..colon];
            portText = colon < 0 ? default : host[(colon + 1)..];
            if (name.IsEmpty) return false;
            foreach (var c in name)
                if (!char.IsAsciiLetterOrDigit(c) && "-._~%!$&'()*+=".IndexOf(c) < 0) return false;
            if (colon < 0) return true;
        }
        if (!TryParsePort(portText, out var value)) return false;
        port = value;
        return true;
    }

    /// <summary>The elements of a <c>Forwarded</c> header: split at commas outside quoted strings.</summary>
    private static List<Range> SplitElements(string text)
    {
        var elements = new List<Range>(2);
        var start = 0;
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '\\') i++;
                else if (c == '"') quoted = false;
            }
            else if (c == '"') quoted = true;
            else if (c == ',')
            {
                elements.Add(start..i);
                start = i + 1;
            }
        }
        elements.Add(start..text.Length);
        return elements;
    }

    /// <summary>
    /// One <c>Forwarded</c> element: <c>name=value</c> pairs separated by <c>;</c>, a value a token or a
    /// quoted string. Names are case-insensitive; <c>for</c>, <c>proto</c> and <c>host</c> are taken,
    /// others (<c>by</c>, extensions) skipped. False when malformed, or when a name repeats (RFC 7239 §4).
    /// </summary>
    private static bool TryParseElement(ReadOnlySpan<char> element, out Hop hop)
    {
        hop = default;
        var seenBy = false;
        var i = 0;
        while (true)
        {
            while (i < element.Length && element[i] is ' ' or '\t') i++;
            if (i == element.Length) return true;
            if (element[i] == ';')
            {
                i++;
                continue;
            }
            var nameStart = i;
            while (i < element.Length && IsTokenChar(element[i])) i++;
            var name = element[nameStart..i];
            if (name.IsEmpty || i == element.Length || element[i] != '=') return false;
            i++;
            ReadOnlySpan<char> value;
            if (i < element.Length && element[i] == '"')
            {
                var start = ++i;
                var escaped = false;
                while (i < element.Length && element[i] != '"')
                {
                    if (element[i] == '\\') { escaped = true; i++; }
                    i++;
                }
                if (i >= element.Length) return false;   // unterminated
                value = element[start..i];
                i++;
                if (escaped) value = Unescape(value);
            }
            else
            {
                var start = i;
                while (i < element.Length && element[i] is not (';' or ' ' or '\t' or '"')) i++;
                value = element[start..i];
            }
            while (i < element.Length && element[i] is ' ' or '\t') i++;
            if (i < element.Length && element[i] != ';') return false;

            ref var seen = ref seenBy;
            if (name.Equals("for", StringComparison.OrdinalIgnoreCase)) { seen = ref hop.HasFor; hop.For = value; }
            else if (name.Equals("proto", StringComparison.OrdinalIgnoreCase)) { seen = ref hop.HasProto; hop.Proto = value; }
            else if (name.Equals("host", StringComparison.OrdinalIgnoreCase)) { seen = ref hop.HasHost; hop.Host = value; }
            else if (!name.Equals("by", StringComparison.OrdinalIgnoreCase)) continue;
            if (seen) return false;
            seen = true;
        }
    }

    private static string Unescape(ReadOnlySpan<char> quoted)
    {
        var chars = new char[quoted.Length];
        var n = 0;
        for (var i = 0; i < quoted.Length; i++)
        {
            if (quoted[i] == '\\' && i + 1 < quoted.Length) i++;
            chars[n++] = quoted[i];
        }
        return new string(chars, 0, n);
    }

    /// <summary>RFC 9110 tchar.</summary>
    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".IndexOf(c) >= 0;
}
