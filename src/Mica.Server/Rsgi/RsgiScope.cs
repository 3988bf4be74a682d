using System.Net;
using Mica.Server.EventLoop;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Rsgi;

/// <summary>
/// Builds the RSGI scope (<c>mica.rsgi.Scope</c>, declared in rsgi.py) from Kestrel's request
/// features, on the Python thread. Values as Granian gives them: <c>http_version</c> "1", "1.1" or
/// "2"; <c>server</c> and <c>client</c> as "host:port" (the socket path and "" on a Unix socket);
/// <c>scheme</c> "http"/"https", websockets included; <c>path</c> percent-decoded and
/// <c>query_string</c> as sent; <c>authority</c> the HTTP/2 :authority (or an absolute-form
/// target's), else None.
/// </summary>
internal sealed unsafe class RsgiScope
{
    private readonly RecordType _scopeType = RecordType.Named("mica.rsgi.Scope");
    private readonly RecordType _headersType = RecordType.Named("mica.rsgi.Headers");
    private readonly int _proto, _httpVersion, _rsgiVersion, _server, _client, _scheme, _method, _path, _queryString, _headers, _authority;

    // Values that recur, kept for the worker's life.
    private readonly nint _http = PyStr.Intern("http"), _ws = PyStr.Intern("ws"), _version = PyStr.Intern("1.6"),
        _http10 = PyStr.Intern("1"), _http11 = PyStr.Intern("1.1"), _http2 = PyStr.Intern("2"), _https = PyStr.Intern("https"),
        _emptyStr = PyStr.Intern(""), _unixServer;
    private readonly PyObjectCache _methods = new(64, static method => PyStr.New(method));
    // Header names as lowercase str.
    private readonly PyObjectCache _headerNames = new(512, static name => PyStr.New(name.ToLowerInvariant()));
    private (IPAddress? Address, int Port, nint Str) _lastServer;

    /// <param name="unixSocket">The listening socket's path, when it is a Unix domain socket: the scope's server.</param>
    public RsgiScope(string? unixSocket)
    {
        _proto = _scopeType.IndexOf("proto");
        _httpVersion = _scopeType.IndexOf("http_version");
        _rsgiVersion = _scopeType.IndexOf("rsgi_version");
        _server = _scopeType.IndexOf("server");
        _client = _scopeType.IndexOf("client");
        _scheme = _scopeType.IndexOf("scheme");
        _method = _scopeType.IndexOf("method");
        _path = _scopeType.IndexOf("path");
        _queryString = _scopeType.IndexOf("query_string");
        _headers = _scopeType.IndexOf("headers");
        _authority = _scopeType.IndexOf("authority");
        if (unixSocket is not null)
        {
            var path = PyStr.New(unixSocket);
            _unixServer = path.Release();
        }
    }

    public PyRef Build(IFeatureCollection features, bool websocket)
    {
        var request = features.GetRequiredFeature<IHttpRequestFeature>();
        var connection = features.GetRequiredFeature<IHttpConnectionFeature>();
        Span<nint> values = stackalloc nint[_scopeType.FieldCount];
        values[_proto] = websocket ? _ws : _http;
        values[_rsgiVersion] = _version;
        values[_httpVersion] = request.Protocol switch
        {
            "HTTP/1.1" => _http11,
            "HTTP/2" => _http2,
            _ => _http10,
        };
        // The connection's scheme, or a trusted proxy's (ForwardedHeaders).
        values[_scheme] = request.Scheme == "https" ? _https : _http;
        values[_server] = Server(connection);
        try
        {
            values[_method] = _methods.Get(request.Method);
            using var client = connection.RemoteIpAddress is { } remote
                ? PyStr.New(Addresses.HostPort(remote, connection.RemotePort))
                : PyRef.Borrow(_emptyStr);
            values[_client] = client.Handle;
            var target = RequestTarget.Of(request);
            using var path = DecodedPath(target);
            values[_path] = path.Handle;
            using var query = target.Query.IsEmpty ? PyRef.Borrow(_emptyStr) : PyStr.FromChars(target.Query);
            values[_queryString] = query.Handle;
            using var authority = Authority(request);
            values[_authority] = authority.Handle;
            // The Headers record over [(name, value), ...]: lowercase names, values as latin-1 text
            // (one char per byte sent, see KestrelHost).
            using var pairs = HeaderPairs.Build(request.Headers, _headerNames, static value => PyStr.FromChars(value));
            Span<nint> headerFields = [pairs.Handle];
            using var headers = _headersType.New(headerFields);
            values[_headers] = headers.Handle;
            return _scopeType.New(values);
        }
        finally
        {
            _methods.ReleaseTransient();
            _headerNames.ReleaseTransient();
        }
    }

    private nint Server(IHttpConnectionFeature connection)
    {
        var (address, port) = (connection.LocalIpAddress, connection.LocalPort);
        if (address is null) return _unixServer != 0 ? _unixServer : _emptyStr;
        if (_lastServer.Str != 0 && port == _lastServer.Port && address.Equals(_lastServer.Address)) return _lastServer.Str;
        if (_lastServer.Str != 0) Py.DecRef(_lastServer.Str);
        var str = PyStr.New(Addresses.HostPort(address, port));
        _lastServer = (address, port, str.Release());
        return _lastServer.Str;
    }

    private nint _decodedPath;   // WithPathBytes' result, taken at once by DecodedPath

    /// <summary>The path, percent-decoded, as UTF-8 with invalid bytes replaced (U+FFFD).</summary>
    private PyRef DecodedPath(RequestTarget target)
    {
        target.WithPathBytes(this, static (_, decoded, scope) =>
        {
            fixed (byte* p = decoded) scope._decodedPath = PyRef.Check(Py.UnicodeDecodeUTF8(p, decoded.Length, PyStr.Utf8Z("replace")));
        });
        var path = PyRef.Steal(_decodedPath);
        _decodedPath = 0;
        return path;
    }

    /// <summary>HTTP/2's :authority (Kestrel keeps it as Host), or the authority of an absolute-form HTTP/1 target.</summary>
    private static PyRef Authority(IHttpRequestFeature request)
    {
        if (request.Protocol == "HTTP/2")
            return request.Headers.Host is { Count: > 0 } host ? PyStr.New(host.ToString()) : PyRef.Borrow(Py.None);
        var target = request.RawTarget;
        if (target.Length > 0 && target[0] != '/' && Uri.TryCreate(target, UriKind.Absolute, out var uri) && uri.Authority.Length > 0)
            return PyStr.New(uri.Authority);
        return PyRef.Borrow(Py.None);
    }
}
