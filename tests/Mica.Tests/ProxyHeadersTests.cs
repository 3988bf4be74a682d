using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>scope_echo:app trusting nobody the tests connect from (they connect from 127.0.0.1).</summary>
public sealed class UntrustedProxyServer : MicaServer
{
    protected override string App => "scope_echo:app";
    protected override string[] Options => ["--forwarded-allow-ips", "10.0.0.1"];
}

/// <summary>scope_echo:app with --no-proxy-headers.</summary>
public sealed class NoProxyHeadersServer : MicaServer
{
    protected override string App => "scope_echo:app";
    protected override string[] Options => ["--no-proxy-headers"];
}

/// <summary>wsgi_app:app trusting nobody the tests connect from.</summary>
public sealed class WsgiUntrustedProxyServer : MicaServer
{
    protected override string App => "wsgi_app:app";
    protected override string[] Options => ["--interface", "wsgi", "--forwarded-allow-ips", "10.0.0.1"];
}

/// <summary>What the apps see of a request, sent from 127.0.0.1 on a new connection.</summary>
internal static class ProxiedRequest
{
    /// <summary>scope_echo's scope for GET /x with <paramref name="headers"/>; also the client's local port.</summary>
    public static async Task<(JsonElement Scope, int ClientPort)> ScopeAsync(MicaProcess mica, params string[] headers)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(RawConnection.Get("/x", headers));
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"status {response.Status}: {response.BodyText}\n{mica.Dump(30)}");
        return (Json.Parse(response.Body).GetProperty("scope"), connection.LocalEndPoint.Port);
    }

    public static string? Header(this JsonElement scope, string name) =>
        scope.GetProperty("headers").EnumerateArray().Where(h => h[0].GetString() == name).Select(h => h[1].GetString()).SingleOrDefault();

    public static string Client(this JsonElement scope) => $"{scope.GetProperty("client")[0].GetString()}:{scope.GetProperty("client")[1].GetInt32()}";

    public const string Spoofed = "X-Forwarded-For: 203.0.113.7";
}

/// <summary>
/// Proxy headers through the real server, ASGI: the tests connect from 127.0.0.1, which is trusted
/// by default, like a reverse proxy on the same machine.
/// </summary>
public sealed class ProxyHeadersTests(PlainEchoServer server) : ServerTests<PlainEchoServer>(server)
{
    [Fact]
    public async Task X_Forwarded_For_from_a_trusted_peer_becomes_the_client_with_port_0()
    {
        var (scope, _) = await ProxiedRequest.ScopeAsync(Mica, ProxiedRequest.Spoofed);
        Assert.Equal("203.0.113.7:0", scope.Client());
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("203.0.113.7", scope.Header("x-forwarded-for"));   // the headers themselves reach the app
    }

    [Fact]
    public async Task The_client_is_the_rightmost_untrusted_address()
    {
        var (scope, _) = await ProxiedRequest.ScopeAsync(Mica, "X-Forwarded-For: 6.6.6.6, 203.0.113.7, 127.0.0.1");
        Assert.Equal("203.0.113.7:0", scope.Client());
    }

    [Fact]
    public async Task Proto_and_host_set_the_scheme_and_the_Host_header_but_not_the_server()
    {
        var (scope, _) = await ProxiedRequest.ScopeAsync(Mica,
            "X-Forwarded-For: 2001:db8::7", "X-Forwarded-Proto: https", "X-Forwarded-Host: shop.example:8443");
        Assert.Equal("2001:db8::7:0", scope.Client());
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal("shop.example:8443", scope.Header("host"));
        Assert.Equal("127.0.0.1", scope.GetProperty("server")[0].GetString());
        Assert.Equal(Mica.Port, scope.GetProperty("server")[1].GetInt32());
    }

    [Fact]
    public async Task Forwarded_gives_client_port_scheme_and_host()
    {
        var (scope, _) = await ProxiedRequest.ScopeAsync(Mica, "Forwarded: for=\"[2001:db8::1]:4711\";proto=https;host=\"a.example\"");
        Assert.Equal("2001:db8::1:4711", scope.Client());
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal("a.example", scope.Header("host"));
    }

    [Fact]
    public async Task X_Forwarded_headers_win_over_Forwarded()
    {
        var (scope, _) = await ProxiedRequest.ScopeAsync(Mica, ProxiedRequest.Spoofed, "Forwarded: for=198.51.100.1;proto=https");
        Assert.Equal("203.0.113.7:0", scope.Client());
        Assert.Equal("http", scope.Str("scheme"));
    }

    [Fact]
    public async Task Bad_values_are_ignored()
    {
        var (scope, port) = await ProxiedRequest.ScopeAsync(Mica, "X-Forwarded-For: unknown", "X-Forwarded-Proto: gopher", "X-Forwarded-Host: a b");
        Assert.Equal($"127.0.0.1:{port}", scope.Client());
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("localhost", scope.Header("host"));
    }

    [Fact]
    public async Task Without_proxy_headers_the_scope_is_the_connection_s()
    {
        var (scope, port) = await ProxiedRequest.ScopeAsync(Mica);
        Assert.Equal($"127.0.0.1:{port}", scope.Client());
        Assert.Equal("http", scope.Str("scheme"));
    }

    [Fact]
    public async Task Each_request_on_a_keep_alive_connection_starts_from_the_connection_s_values()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/x", ProxiedRequest.Spoofed, "X-Forwarded-Proto: https"));
        var first = Json.Parse((await connection.ReadResponseAsync()).Body).GetProperty("scope");
        await connection.SendAsync(RawConnection.Get("/x"));
        var second = Json.Parse((await connection.ReadResponseAsync()).Body).GetProperty("scope");
        Assert.Equal("203.0.113.7:0", first.Client());
        Assert.Equal("https", first.Str("scheme"));
        Assert.Equal($"127.0.0.1:{connection.LocalEndPoint.Port}", second.Client());
        Assert.Equal("http", second.Str("scheme"));
    }
}

/// <summary>A websocket behind a proxy: X-Forwarded-Proto https makes the scope's scheme wss.</summary>
public sealed class ProxyHeadersWebSocketTests(WsAppServer server) : ServerTests<WsAppServer>(server)
{
    [Theory]
    [InlineData("https", "wss")]
    [InlineData("wss", "wss")]
    [InlineData("http", "ws")]
    public async Task Forwarded_proto_gives_the_websocket_scheme(string proto, string scheme)
    {
        var key = Keys.New();
        await using var ws = await RawWebSocket.ConnectAsync(Mica, $"/scope?key={key}", ProxiedRequest.Spoofed, $"X-Forwarded-Proto: {proto}");
        Assert.True(ws.Response.Status == 101, $"handshake: {ws.Response.Status} {ws.Response.BodyText}");
        var scope = Json.Parse((await ws.ReceiveDataOrCloseAsync()).Payload).GetProperty("scope");
        Assert.Equal(scheme, scope.Str("scheme"));
        Assert.Equal("203.0.113.7:0", scope.Client());
    }
}

/// <summary>--forwarded-allow-ips 10.0.0.1: the tests' 127.0.0.1 is not trusted, and its headers change nothing.</summary>
public sealed class UntrustedProxyTests(UntrustedProxyServer server) : ServerTests<UntrustedProxyServer>(server)
{
    [Fact]
    public async Task Headers_from_an_untrusted_peer_are_ignored()
    {
        var (scope, port) = await ProxiedRequest.ScopeAsync(Mica, ProxiedRequest.Spoofed, "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil.example", "Forwarded: for=198.51.100.1;proto=https");
        Assert.Equal($"127.0.0.1:{port}", scope.Client());
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("localhost", scope.Header("host"));
        Assert.Equal("203.0.113.7", scope.Header("x-forwarded-for"));
    }
}

/// <summary>--no-proxy-headers: even the trusted 127.0.0.1's headers change nothing.</summary>
public sealed class NoProxyHeadersTests(NoProxyHeadersServer server) : ServerTests<NoProxyHeadersServer>(server)
{
    [Fact]
    public async Task Proxy_headers_are_ignored()
    {
        var (scope, port) = await ProxiedRequest.ScopeAsync(Mica, ProxiedRequest.Spoofed, "X-Forwarded-Proto: https",
            "X-Forwarded-Host: evil.example", "Forwarded: for=198.51.100.1;proto=https");
        Assert.Equal($"127.0.0.1:{port}", scope.Client());
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("localhost", scope.Header("host"));
    }
}

/// <summary>Proxy headers through the real server, WSGI (wsgi_app's /env).</summary>
public sealed class WsgiProxyHeadersTests(WsgiServer server) : ServerTests<WsgiServer>(server)
{
    private async Task<JsonElement> EnvironAsync(params string[] headers) =>
        (await EnvironEcho.EchoAsync(Mica, RawConnection.Get("/env", headers))).Payload.Environ();

    [Fact]
    public async Task Client_scheme_and_host_come_from_a_trusted_proxy()
    {
        var environ = await EnvironAsync(ProxiedRequest.Spoofed, "X-Forwarded-Proto: https", "X-Forwarded-Host: shop.example:8443");
        Assert.Equal("203.0.113.7", environ.Str("REMOTE_ADDR"));
        Assert.Equal("0", environ.Str("REMOTE_PORT"));
        Assert.Equal("https", environ.Str("wsgi.url_scheme"));
        Assert.Equal("on", environ.Str("HTTPS"));
        Assert.Equal("shop.example:8443", environ.Str("HTTP_HOST"));
        Assert.Equal("shop.example", environ.Str("SERVER_NAME"));
        Assert.Equal("8443", environ.Str("SERVER_PORT"));
    }

    [Theory]
    [InlineData("https", "443")]
    [InlineData("http", "80")]
    public async Task A_forwarded_host_without_port_has_the_scheme_s_default_port(string proto, string port)
    {
        var environ = await EnvironAsync($"Forwarded: for=203.0.113.7;proto={proto};host=shop.example");
        Assert.Equal("shop.example", environ.Str("HTTP_HOST"));
        Assert.Equal("shop.example", environ.Str("SERVER_NAME"));
        Assert.Equal(port, environ.Str("SERVER_PORT"));
        Assert.Equal(proto, environ.Str("wsgi.url_scheme"));
    }

    [Fact]
    public async Task Without_a_forwarded_host_the_server_is_the_socket_s()
    {
        var environ = await EnvironAsync(ProxiedRequest.Spoofed, "X-Forwarded-Proto: https");
        Assert.Equal("203.0.113.7", environ.Str("REMOTE_ADDR"));
        Assert.Equal("127.0.0.1", environ.Str("SERVER_NAME"));
        Assert.Equal(Mica.Port.ToString(), environ.Str("SERVER_PORT"));
        Assert.Equal("localhost", environ.Str("HTTP_HOST"));
    }

    [Fact]
    public async Task Without_proxy_headers_the_environ_is_the_connection_s()
    {
        var (payload, port) = await EnvironEcho.EchoAsync(Mica, RawConnection.Get("/env"));
        var environ = payload.Environ();
        Assert.Equal("127.0.0.1", environ.Str("REMOTE_ADDR"));
        Assert.Equal(port.ToString(), environ.Str("REMOTE_PORT"));
        Assert.Equal("http", environ.Str("wsgi.url_scheme"));
        Assert.False(environ.Has("HTTPS"));
    }
}

/// <summary>WSGI with --forwarded-allow-ips 10.0.0.1: the tests' headers change nothing.</summary>
public sealed class WsgiUntrustedProxyTests(WsgiUntrustedProxyServer server) : ServerTests<WsgiUntrustedProxyServer>(server)
{
    [Fact]
    public async Task Headers_from_an_untrusted_peer_are_ignored()
    {
        var (payload, port) = await EnvironEcho.EchoAsync(Mica, RawConnection.Get("/env",
            ProxiedRequest.Spoofed, "X-Forwarded-Proto: https", "X-Forwarded-Host: evil.example"));
        var environ = payload.Environ();
        Assert.Equal("127.0.0.1", environ.Str("REMOTE_ADDR"));
        Assert.Equal(port.ToString(), environ.Str("REMOTE_PORT"));
        Assert.Equal("http", environ.Str("wsgi.url_scheme"));
        Assert.Equal("localhost", environ.Str("HTTP_HOST"));
        Assert.Equal("127.0.0.1", environ.Str("SERVER_NAME"));
        Assert.Equal("203.0.113.7", environ.Str("HTTP_X_FORWARDED_FOR"));
    }
}

/// <summary>The options from the environment, a network in the list, and a Unix socket's peer; one server per test.</summary>
public sealed class ProxyHeadersOptionTests
{
    private static async Task<string> ClientSeenAsync(string[] options, Dictionary<string, string?>? environment = null)
    {
        await using var mica = await MicaProcess.StartAsync("scope_echo:app", options, environment);
        var (scope, _) = await ProxiedRequest.ScopeAsync(mica, ProxiedRequest.Spoofed);
        Assert.Equal(0, await mica.StopAsync());
        return scope.GetProperty("client")[0].GetString()!;
    }

    [Fact]
    public async Task A_network_containing_the_peer_trusts_it()
    {
        Assert.Equal("203.0.113.7", await ClientSeenAsync(["--forwarded-allow-ips", "10.0.0.1, 127.0.0.0/8"]));
    }

    [Fact]
    public async Task MICA_PROXY_HEADERS_false_turns_them_off()
    {
        Assert.Equal("127.0.0.1", await ClientSeenAsync([], new() { ["MICA_PROXY_HEADERS"] = "false" }));
    }

    [Fact]
    public async Task Uvicorn_s_FORWARDED_ALLOW_IPS_is_read_last()
    {
        Assert.Equal("127.0.0.1", await ClientSeenAsync([], new() { ["FORWARDED_ALLOW_IPS"] = "10.0.0.1" }));
        Assert.Equal("203.0.113.7", await ClientSeenAsync([], new()
        {
            ["GRANIAN_FORWARDED_ALLOW_IPS"] = "127.0.0.1",
            ["FORWARDED_ALLOW_IPS"] = "10.0.0.1",
        }));
    }

    [Fact]
    public async Task The_access_log_gives_the_forwarded_client_and_scheme()
    {
        await using var mica = await MicaProcess.StartAsync("scope_echo:app", ["--access-log", "--access-log-fmt", "ACCESS %(addr)s %(scheme)s %(path)s"]);
        await ProxiedRequest.ScopeAsync(mica, ProxiedRequest.Spoofed, "X-Forwarded-Proto: https");
        await mica.WaitForStdoutAsync("ACCESS 203.0.113.7 https /x");
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task A_Unix_socket_s_peer_is_trusted()
    {
        using var dir = new ScratchDir();
        var socket = dir.File("s.sock");
        await using var server = await ProtoServer.StartAsync("scope_echo:app", "--uds", socket, "--forwarded-allow-ips", "10.0.0.1");
        var result = await Curl.OkAsync("--unix-socket", socket, "-H", ProxiedRequest.Spoofed, "-H", "X-Forwarded-Proto: https", "http://localhost/x");
        var scope = result.Json.GetProperty("scope");
        Assert.Equal("203.0.113.7:0", scope.Client());
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal(0, await server.Mica.StopAsync());
    }
}
