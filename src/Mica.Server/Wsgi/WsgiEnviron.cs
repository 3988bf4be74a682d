using System.Buffers;
using System.Net;
using System.Text;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Wsgi;

/// <summary>
/// Builds the PEP 3333 environ dict from Kestrel's request features, GIL held. Keys, the
/// <c>HTTP_*</c> names and the constant values are Python objects made once; per request only the
/// dict and the genuinely variable strings are allocated. Nothing of <c>os.environ</c> is copied in
/// (Granian does, leaking the server's environment into every request).
/// <c>wsgi.input</c> is added by the Python side (<c>wsgi.py</c>), which owns that type.
/// </summary>
internal sealed unsafe class WsgiEnviron : IDisposable
{
    // Every Python object this builder keeps (keys, constants, caches), released by Dispose.
    private readonly List<nint> _owned = [];

    private readonly nint _requestMethod, _scriptName, _pathInfo, _queryString, _contentType, _contentLength,
        _serverName, _serverPort, _serverProtocol, _remoteAddr, _remotePort, _wsgiVersion, _urlScheme, _errors,
        _multithread, _multiprocess, _runOnce, _inputTerminated, _fileWrapper;
    private readonly nint _http, _https, _httpsFlag, _on, _http10, _http11, _http2, _empty, _version, _prefix, _multiprocessValue,
        _errorsStream, _fileWrapperType;
    private readonly string _prefixText;
    private readonly string? _unixSocket;

    private readonly Dictionary<string, nint> _methods = new(StringComparer.Ordinal);
    // HTTP_* keys by Kestrel's header name. Bounded so that a client inventing names cannot grow it forever.
    private readonly Dictionary<string, nint> _headerKeys = new(StringComparer.OrdinalIgnoreCase);
    private const int MaxCachedHeaderKeys = 512;
    private (IPAddress? Address, int Port, nint Name, nint PortText) _lastServer;
    private (IPAddress? Address, nint Text) _lastRemote;

    /// <summary>GIL held. One per WSGI thread: its caches are used without locks.</summary>
    /// <param name="prefix">--url-path-prefix: SCRIPT_NAME, and cut from the front of PATH_INFO.</param>
    /// <param name="errors">The shared <c>wsgi.errors</c> stream; <paramref name="fileWrapper"/> the <c>wsgi.file_wrapper</c> type.</param>
    public WsgiEnviron(string prefix, string? unixSocket, bool multiprocess, nint errors, nint fileWrapper)
    {
        _unixSocket = unixSocket;
        nint Key(string name) => Own(PyStr.Intern(name));
        _requestMethod = Key("REQUEST_METHOD");
        _scriptName = Key("SCRIPT_NAME");
        _pathInfo = Key("PATH_INFO");
        _queryString = Key("QUERY_STRING");
        _contentType = Key("CONTENT_TYPE");
        _contentLength = Key("CONTENT_LENGTH");
        _serverName = Key("SERVER_NAME");
        _serverPort = Key("SERVER_PORT");
        _serverProtocol = Key("SERVER_PROTOCOL");
        _remoteAddr = Key("REMOTE_ADDR");
        _remotePort = Key("REMOTE_PORT");
        _wsgiVersion = Key("wsgi.version");
        _urlScheme = Key("wsgi.url_scheme");
        _errors = Key("wsgi.errors");
        _multithread = Key("wsgi.multithread");
        _multiprocess = Key("wsgi.multiprocess");
        _runOnce = Key("wsgi.run_once");
        _inputTerminated = Key("wsgi.input_terminated");
        _fileWrapper = Key("wsgi.file_wrapper");
        _http = Key("http");
        _https = Key("https");
        _httpsFlag = Key("HTTPS");
        _on = Key("on");
        _http10 = Key("HTTP/1.0");
        _http11 = Key("HTTP/1.1");
        _http2 = Key("HTTP/2");
        _empty = Key("");

        _prefixText = prefix;
        var prefixStr = PyStr.New(prefix);
        _prefix = Own(prefixStr.Release());
        using (var version = PyRef.Steal(Py.TupleNew(2)))
        {
            Py.TupleSetItem(version.Handle, 0, PyRef.Check(Py.LongFromLong(1)));
            Py.TupleSetItem(version.Handle, 1, PyRef.Check(Py.LongFromLong(0)));
            _version = Own(PyRef.NewReference(version.Handle));
        }
        _multiprocessValue = multiprocess ? Py.True : Py.False;
        _errorsStream = Own(PyRef.NewReference(errors));
        _fileWrapperType = Own(PyRef.NewReference(fileWrapper));
    }

    private nint Own(nint obj)
    {
        _owned.Add(obj);
        return obj;
    }

    /// <summary>GIL held.</summary>
    public void Dispose()
    {
        foreach (var o in _owned) Py.DecRef(o);
        _owned.Clear();
        if (_lastServer.Name != 0)
        {
            Py.DecRef(_lastServer.Name);
            Py.DecRef(_lastServer.PortText);
        }
        if (_lastRemote.Text != 0) Py.DecRef(_lastRemote.Text);
        _lastServer = default;
        _lastRemote = default;
    }

    /// <param name="forwarded">The Host a trusted proxy forwarded: SERVER_NAME and SERVER_PORT instead of the socket's.</param>
    public PyRef Build(IHttpRequestFeature request, IHttpConnectionFeature connection, ForwardedServer? forwarded)
    {
        try { return BuildEnviron(request, connection, forwarded); }
        finally { ReleaseTransient(); }
    }

    // Objects not worth caching, used by one environ and released by ReleaseTransient.
    private readonly List<nint> _transient = [];

    private void ReleaseTransient()
    {
        foreach (var o in _transient) Py.DecRef(o);
        _transient.Clear();
    }

    private PyRef BuildEnviron(IHttpRequestFeature request, IHttpConnectionFeature connection, ForwardedServer? forwarded)
    {
        using var environ = PyRef.Steal(Py.DictNew());
        var d = environ.Handle;
        Set(d, _requestMethod, Method(request.Method));
        SetTarget(d, request);
        Set(d, _serverProtocol, request.Protocol switch
        {
            "HTTP/1.1" => _http11,
            "HTTP/2" => _http2,
            _ => _http10,
        });
        if (forwarded is { } server)
        {
            SetNew(d, _serverName, PyStr.New(server.Name));
            SetNew(d, _serverPort, PyStr.New(server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        else SetServer(d, connection);
        SetRemote(d, connection);
        SetHeaders(d, request.Headers);
        Set(d, _wsgiVersion, _version);
        // The connection's scheme, or a trusted proxy's (ForwardedHeaders): url_scheme https and HTTPS=on.
        if (request.Scheme == "https")
        {
            Set(d, _urlScheme, _https);
            Set(d, _httpsFlag, _on);
        }
        else Set(d, _urlScheme, _http);
        Set(d, _errors, _errorsStream);
        Set(d, _multithread, Py.True);
        Set(d, _multiprocess, _multiprocessValue);
        Set(d, _runOnce, Py.False);
        Set(d, _inputTerminated, Py.True);
        Set(d, _fileWrapper, _fileWrapperType);
        return PyRef.Borrow(d);
    }

    private static void Set(nint dict, nint key, nint value)
    {
        if (Py.DictSetItem(dict, key, value) != 0) throw PythonException.Fetch();
    }

    private static void SetNew(nint dict, nint key, PyRef value)
    {
        using (value) Set(dict, key, value.Handle);
    }

    private nint Method(string method)
    {
        if (_methods.TryGetValue(method, out var cached)) return cached;
        var methodStr = PyStr.FromChars(method);
        var str = methodStr.Release();
        if (_methods.Count < 64) _methods[method] = Own(str);
        else _transient.Add(str);
        return str;
    }

    /// <summary>
    /// SCRIPT_NAME, PATH_INFO and QUERY_STRING from the raw request target. PATH_INFO is the
    /// percent-decoded path as latin-1 text (PEP 3333's "bytes in a str"), without the prefix.
    /// </summary>
    private void SetTarget(nint d, IHttpRequestFeature request)
    {
        var target = RequestTarget.Of(request);
        target.WithPathBytes((this, d), static (_, decoded, state) =>
        {
            var (environ, dict) = state;
            ReadOnlySpan<byte> path = decoded;
            var prefixLength = environ._prefixText.Length;
            if (prefixLength > 0 && path.Length >= prefixLength && Encoding.Latin1.GetString(path[..prefixLength]) == environ._prefixText
                && (path.Length == prefixLength || path[prefixLength] == '/'))
                path = path[prefixLength..];
            Set(dict, environ._scriptName, environ._prefix);
            fixed (byte* p = path) SetNew(dict, environ._pathInfo, PyRef.Steal(Py.UnicodeDecodeLatin1(p, path.Length, null)));
        });
        if (!target.HasQuery) Set(d, _queryString, _empty);
        else SetNew(d, _queryString, PyStr.FromChars(target.Query));
    }

    private void SetServer(nint d, IHttpConnectionFeature connection)
    {
        var (address, port) = (connection.LocalIpAddress, connection.LocalPort);
        if (_lastServer.Name == 0 || port != _lastServer.Port || !Equals(address, _lastServer.Address))
        {
            if (_lastServer.Name != 0)
            {
                Py.DecRef(_lastServer.Name);
                Py.DecRef(_lastServer.PortText);
            }
            // A Unix domain socket has no address: SERVER_NAME is its path, SERVER_PORT empty (as gunicorn).
            var name = PyStr.New(address is null ? _unixSocket ?? "" : HostString(address));
            var portText = PyStr.New(address is null ? "" : port.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _lastServer = (address, port, name.Release(), portText.Release());
        }
        Set(d, _serverName, _lastServer.Name);
        Set(d, _serverPort, _lastServer.PortText);
    }

    private void SetRemote(nint d, IHttpConnectionFeature connection)
    {
        var address = connection.RemoteIpAddress;
        if (address is null) return;
        if (_lastRemote.Text == 0 || !address.Equals(_lastRemote.Address))
        {
            if (_lastRemote.Text != 0) Py.DecRef(_lastRemote.Text);
            var text = PyStr.New(HostString(address));
            _lastRemote = (address, text.Release());
        }
        Set(d, _remoteAddr, _lastRemote.Text);
        Span<char> port = stackalloc char[8];
        connection.RemotePort.TryFormat(port, out var written, provider: System.Globalization.CultureInfo.InvariantCulture);
        SetNew(d, _remotePort, PyStr.FromChars(port[..written]));
    }

    private static string HostString(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : address.ToString();

    /// <summary>
    /// CONTENT_TYPE, CONTENT_LENGTH and HTTP_* for the rest, values of a repeated header joined with
    /// ",". A name with "_" is dropped, as gunicorn and nginx do: it would share its HTTP_* key with
    /// the "-" spelling and let a client pass off "X_Forwarded_For" as "X-Forwarded-For".
    /// </summary>
    private void SetHeaders(nint d, IHeaderDictionary headers)
    {
        foreach (var (name, values) in headers)
        {
            nint key;
            if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)) key = _contentType;
            else if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) key = _contentLength;
            else if (name.Contains('_')) continue;
            else key = HeaderKey(name);
            SetNew(d, key, PyStr.FromChars(values.Count == 1 ? values[0] ?? "" : values.ToString()));
        }
    }

    /// <summary>"HTTP_" + the name upper-cased, "-" as "_".</summary>
    private nint HeaderKey(string name)
    {
        if (_headerKeys.TryGetValue(name, out var cached)) return cached;
        var key = string.Create(5 + name.Length, name, static (span, name) =>
        {
            "HTTP_".CopyTo(span);
            for (var i = 0; i < name.Length; i++) span[5 + i] = name[i] == '-' ? '_' : char.ToUpperInvariant(name[i]);
        });
        var keyStr = PyStr.FromChars(key);
        var str = keyStr.Release();
        if (_headerKeys.Count < MaxCachedHeaderKeys) _headerKeys[name] = Own(str);
        else _transient.Add(str);
        return str;
    }
}
