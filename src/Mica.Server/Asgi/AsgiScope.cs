using System.Buffers;
using System.Net;
using System.Text;
using Mica.Server.EventLoop;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Asgi;

/// <summary>
/// Builds the ASGI <c>http</c> scope dict from Kestrel's request features, on the Python thread.
/// Keys and recurring values (methods, header names, versions) are Python objects created once;
/// per request only the dict, tuples and the genuinely variable strings/bytes are allocated.
/// </summary>
internal sealed unsafe class AsgiScope
{
    // Interned keys, kept for the worker's life.
    private readonly nint _type = PyStr.Intern("type"), _asgi = PyStr.Intern("asgi"), _version = PyStr.Intern("version"),
        _specVersion = PyStr.Intern("spec_version"), _httpVersion = PyStr.Intern("http_version"), _server = PyStr.Intern("server"),
        _client = PyStr.Intern("client"), _scheme = PyStr.Intern("scheme"), _method = PyStr.Intern("method"),
        _rootPath = PyStr.Intern("root_path"), _path = PyStr.Intern("path"), _rawPath = PyStr.Intern("raw_path"),
        _queryString = PyStr.Intern("query_string"), _headers = PyStr.Intern("headers"), _state = PyStr.Intern("state"),
        _subprotocols = PyStr.Intern("subprotocols"), _extensions = PyStr.Intern("extensions");

    private readonly nint _http = PyStr.Intern("http"), _asgiVersion = PyStr.Intern("3.0"), _asgiSpecVersion = PyStr.Intern("2.3"),
        _http10 = PyStr.Intern("1.0"), _http11 = PyStr.Intern("1.1"), _http2 = PyStr.Intern("2"), _httpScheme = PyStr.Intern("http"),
        _websocket = PyStr.Intern("websocket"), _wsScheme = PyStr.Intern("ws"), _websocketExtensions, _httpExtensions,
        _httpsScheme = PyStr.Intern("https"), _wssScheme = PyStr.Intern("wss"), _tlsKey = PyStr.Intern("tls"),
        _serverCert = PyStr.Intern("server_cert"), _clientCertChain = PyStr.Intern("client_cert_chain"),
        _clientCertName = PyStr.Intern("client_cert_name"), _clientCertError = PyStr.Intern("client_cert_error"),
        _tlsVersion = PyStr.Intern("tls_version"), _cipherSuite = PyStr.Intern("cipher_suite"), _serverCertPem,
        _emptyBytes, _rootPathValue;

    private readonly PyObjectCache _methods = new(64, static method => PyStr.New(method));
    // Header names as lowercase bytes.
    private readonly PyObjectCache _headerNames = new(512, static name => PyStr.Latin1Bytes(name.ToLowerInvariant()));

    private (IPAddress? Address, int Port, nint Tuple) _lastServer;
    private readonly nint _unixServer;
    private (IPAddress? Address, nint Str) _lastClientHost;

    /// <param name="unixSocket">The listening socket's path, when it is a Unix domain socket: the scope's server is then [path, None].</param>
    /// <param name="serverCertificatePem">With TLS: the server certificate, for the scope's <c>tls</c> extension.</param>
    public AsgiScope(string rootPath, string? unixSocket, string? serverCertificatePem)
    {
        using (var pem = serverCertificatePem is null ? PyRef.Borrow(Py.None) : PyStr.New(serverCertificatePem))
            _serverCertPem = PyRef.NewReference(pem.Handle);
        if (unixSocket is not null)
        {
            using var tuple = PyRef.Steal(Py.TupleNew(2));
            var path = PyStr.New(unixSocket);
            Py.TupleSetItem(tuple.Handle, 0, path.Release());
            Py.TupleSetItem(tuple.Handle, 1, PyRef.NewReference(Py.None));
            _unixServer = PyRef.NewReference(tuple.Handle);
        }
        var empty = PyStr.Bytes([]);
        _emptyBytes = empty.Release();
        var prefix = PyStr.New(rootPath);
        _rootPathValue = prefix.Release();
        // {"websocket.http.response": {}}: the app may deny a websocket with a full HTTP response.
        using var extensions = PyRef.Steal(Py.DictNew());
        using var denial = PyRef.Steal(Py.DictNew());
        using var denialKey = PyStr.New("websocket.http.response");
        Set(extensions.Handle, denialKey.Handle, denial.Handle);
        _websocketExtensions = PyRef.NewReference(extensions.Handle);
        // {"http.response.pathsend": {}}: the app may answer with a file path for the server to send.
        // Both extension dicts are copied into each scope (a middleware may add to its own).
        using var httpExtensions = PyRef.Steal(Py.DictNew());
        using var pathsend = PyRef.Steal(Py.DictNew());
        using var pathsendKey = PyStr.New("http.response.pathsend");
        Set(httpExtensions.Handle, pathsendKey.Handle, pathsend.Handle);
        _httpExtensions = PyRef.NewReference(httpExtensions.Handle);
    }

    /// <param name="state">The state dict a copy of which goes into the scope.</param>
    /// <param name="websocket">A websocket scope (no method; subprotocols and extensions) instead of http.</param>
    public PyRef Build(IFeatureCollection features, nint state, bool websocket = false)
    {
        try { return BuildScope(features, state, websocket); }
        finally
        {
            _methods.ReleaseTransient();
            _headerNames.ReleaseTransient();
        }
    }

    private PyRef BuildScope(IFeatureCollection features, nint state, bool websocket)
    {
        var request = features.GetRequiredFeature<IHttpRequestFeature>();
        var connection = features.GetRequiredFeature<IHttpConnectionFeature>();
        var tls = features.Get<ITlsHandshakeFeature>();
        // The connection's scheme, or a trusted proxy's (ForwardedHeaders); tls is the connection's own.
        var https = request.Scheme == "https";
        using var scope = PyRef.Steal(Py.DictNew());
        var d = scope.Handle;
        Set(d, _type, websocket ? _websocket : _http);
        using (var asgi = PyRef.Steal(Py.DictNew()))
        {
            Set(asgi.Handle, _version, _asgiVersion);
            Set(asgi.Handle, _specVersion, _asgiSpecVersion);
            Set(d, _asgi, asgi.Handle);
        }
        Set(d, _httpVersion, request.Protocol switch
        {
            "HTTP/1.1" => _http11,
            "HTTP/2" => _http2,
            _ => _http10,
        });
        Set(d, _server, ServerTuple(connection));
        using (var client = ClientTuple(connection)) Set(d, _client, client.Handle);
        if (websocket)
        {
            Set(d, _scheme, https ? _wssScheme : _wsScheme);
            using (var subprotocols = Subprotocols(request.Headers)) Set(d, _subprotocols, subprotocols.Handle);
        }
        else
        {
            Set(d, _scheme, https ? _httpsScheme : _httpScheme);
            Set(d, _method, _methods.Get(request.Method));
        }
        using (var extensions = PyRef.Steal(Py.DictCopy(websocket ? _websocketExtensions : _httpExtensions)))
        {
            if (tls is not null)
            {
                using var tlsInfo = TlsExtension(tls, features.Get<ITlsConnectionFeature>());
                Set(extensions.Handle, _tlsKey, tlsInfo.Handle);
            }
            Set(d, _extensions, extensions.Handle);
        }
        Set(d, _rootPath, _rootPathValue);
        SetTarget(d, request);
        // [(name, value), ...] as lowercase-name byte pairs.
        using (var headers = HeaderPairs.Build(request.Headers, _headerNames, static value => PyStr.Latin1Bytes(value))) Set(d, _headers, headers.Handle);
        using (var copy = PyRef.Steal(Py.DictCopy(state))) Set(d, _state, copy.Handle);
        return PyRef.Borrow(d);
    }

    private static void Set(nint dict, nint key, nint value)
    {
        if (Py.DictSetItem(dict, key, value) != 0) throw PythonException.Fetch();
    }

    /// <summary>
    /// The ASGI <c>tls</c> extension (beyond Granian): server certificate, the client's certificate
    /// if it sent one, TLS version and cipher suite as their IANA numbers.
    /// </summary>
    private PyRef TlsExtension(ITlsHandshakeFeature handshake, ITlsConnectionFeature? connection)
    {
        using var info = PyRef.Steal(Py.DictNew());
        var d = info.Handle;
        Set(d, _serverCert, _serverCertPem);
        var client = connection?.ClientCertificate;
        using (var chain = PyRef.Steal(Py.ListNew(0)))
        {
            if (client is not null)
            {
                using var pem = PyStr.New(client.ExportCertificatePem());
                if (Py.ListAppend(chain.Handle, pem.Handle) != 0) throw PythonException.Fetch();
            }
            Set(d, _clientCertChain, chain.Handle);
        }
        using (var name = client is null ? PyRef.Borrow(Py.None) : PyStr.New(client.SubjectName.Name)) Set(d, _clientCertName, name.Handle);
        Set(d, _clientCertError, Py.None);
        var version = handshake.Protocol switch
        {
            System.Security.Authentication.SslProtocols.Tls13 => 0x0304,
            System.Security.Authentication.SslProtocols.Tls12 => 0x0303,
            _ => 0,
        };
        using (var v = PyRef.Steal(Py.LongFromLong(version))) Set(d, _tlsVersion, v.Handle);
        using (var cipher = PyRef.Steal(Py.LongFromLong((long)(handshake.NegotiatedCipherSuite ?? 0)))) Set(d, _cipherSuite, cipher.Handle);
        return PyRef.Borrow(d);
    }

    /// <summary>Sec-WebSocket-Protocol's comma-separated values, as a list of str.</summary>
    private static PyRef Subprotocols(Microsoft.AspNetCore.Http.IHeaderDictionary headers)
    {
        using var list = PyRef.Steal(Py.ListNew(0));
        foreach (var value in headers.SecWebSocketProtocol)
        {
            foreach (var part in (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                using var str = PyStr.New(part);
                if (Py.ListAppend(list.Handle, str.Handle) != 0) throw PythonException.Fetch();
            }
        }
        return PyRef.Borrow(list.Handle);
    }

    private nint ServerTuple(IHttpConnectionFeature connection)
    {
        var (address, port) = (connection.LocalIpAddress, connection.LocalPort);
        if (address is null && _unixServer != 0) return _unixServer;
        if (_lastServer.Tuple != 0 && port == _lastServer.Port && Equals(address, _lastServer.Address))
            return _lastServer.Tuple;
        if (_lastServer.Tuple != 0) Py.DecRef(_lastServer.Tuple);
        var tuple = AddressTuple(address, port);
        _lastServer = (address, port, tuple.Release());
        return _lastServer.Tuple;
    }

    private PyRef ClientTuple(IHttpConnectionFeature connection)
    {
        var address = connection.RemoteIpAddress;
        if (address is null) return PyRef.Borrow(Py.None);
        if (_lastClientHost.Str == 0 || !address.Equals(_lastClientHost.Address))
        {
            if (_lastClientHost.Str != 0) Py.DecRef(_lastClientHost.Str);
            var host = PyStr.New(Addresses.Host(address));
            _lastClientHost = (address, host.Release());
        }
        var port = PyRef.Check(Py.LongFromLong(connection.RemotePort));
        using var tuple = PyRef.Steal(Py.TupleNew(2));
        Py.TupleSetItem(tuple.Handle, 0, PyRef.NewReference(_lastClientHost.Str));
        Py.TupleSetItem(tuple.Handle, 1, port);     // steals
        return PyRef.Borrow(tuple.Handle);
    }

    private static PyRef AddressTuple(IPAddress? address, int port)
    {
        if (address is null) return PyRef.Borrow(Py.None);
        using var tuple = PyRef.Steal(Py.TupleNew(2));
        var host = PyStr.New(Addresses.Host(address));
        Py.TupleSetItem(tuple.Handle, 0, host.Release());
        Py.TupleSetItem(tuple.Handle, 1, PyRef.Check(Py.LongFromLong(port)));
        return PyRef.Borrow(tuple.Handle);
    }

    /// <summary><c>path</c> (percent-decoded, UTF-8), <c>raw_path</c> and <c>query_string</c> from the target as sent.</summary>
    private void SetTarget(nint d, IHttpRequestFeature request)
    {
        var target = RequestTarget.Of(request);
        target.WithPathBytes((this, d), static (raw, decoded, state) =>
        {
            var (scope, dict) = state;
            using (var rawBytes = PyStr.Bytes(raw)) Set(dict, scope._rawPath, rawBytes.Handle);
            fixed (byte* p = decoded)
            {
                using var path = PyRef.Steal(Py.UnicodeDecodeUTF8(p, decoded.Length, PyStr.Utf8Z("replace")));
                Set(dict, scope._path, path.Handle);
            }
        });
        if (!target.HasQuery || target.Query.IsEmpty) Set(d, _queryString, _emptyBytes);
        else
        {
            using var qs = PyStr.Latin1Bytes(target.Query.ToString());
            Set(d, _queryString, qs.Handle);
        }
    }
}
