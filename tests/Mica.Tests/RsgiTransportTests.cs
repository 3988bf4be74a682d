using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>rsgi_app.py over TLS with the test server certificate.</summary>
public sealed class RsgiTlsServer : RsgiAppServer
{
    protected override async Task<string[]> OptionsAsync()
    {
        var pki = await TestPki.GetAsync();
        return [.. await base.OptionsAsync(), "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey];
    }
}

/// <summary>RSGI scopes over TLS: scheme https for HTTP/1.1, HTTP/2 and websockets (wss).</summary>
public sealed class RsgiTlsTests(RsgiTlsServer fixture) : ProtoServerTests<RsgiTlsServer>(fixture)
{
    private static async Task<CurlResult> HttpsAsync(string url, params string[] args)
    {
        var pki = await TestPki.GetAsync();
        var result = await Curl.RunAsync(["--cacert", pki.CaCert, .. args, url]);
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        return result;
    }

    [Fact]
    public async Task Http1_1_over_TLS_has_scheme_https()
    {
        Assert.StartsWith("https://", Server.Url);
        var scope = (await HttpsAsync(Server.Base + "/info?test=true", "--http1.1")).Json;
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal("1.1", scope.Str("http_version"));
        Assert.Equal("test=true", scope.Str("query_string"));
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("server"));
    }

    [Fact]
    public async Task Http2_over_TLS_has_scheme_https_version_2_and_the_authority()
    {
        var result = await HttpsAsync(Server.Base + "/info", "--http2");
        Assert.Equal("2", result.HttpVersion);
        var scope = result.Json;
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal("2", scope.Str("http_version"));
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("authority"));
    }

    [Fact]
    public async Task A_body_and_a_stream_over_TLS()
    {
        var pki = await TestPki.GetAsync();
        using var client = Clients.Http11(Server.Base, pki);
        var data = TestData.RandomBytes(1024 * 1024, 81);
        using var echoed = await client.PostAsync("/echo", new ByteArrayContent(data));
        Assert.Equal(TestData.Sha256(data), TestData.Sha256(await echoed.Content.ReadAsByteArrayAsync()));
        Assert.Equal("testtesttest", await client.GetStringAsync("/stream"));
    }

    [Fact]
    public async Task Websocket_over_TLS_has_scheme_https()
    {
        var pki = await TestPki.GetAsync();
        using var ws = new ClientWebSocket();
        ws.Options.RemoteCertificateValidationCallback = (_, certificate, _, _) => pki.Trusts(certificate);
        using (var cts = new CancellationTokenSource(Ws.Timeout))
            await ws.ConnectAsync(new Uri($"wss://127.0.0.1:{Server.Port}/ws_info?test=true"), cts.Token);
        var scope = Json.Parse((await ws.ReceiveMessageAsync()).Data);
        Assert.Equal("ws", scope.Str("proto"));
        Assert.Equal("https", scope.Str("scheme"));   // not "wss"
        Assert.Equal("test=true", scope.Str("query_string"));
        await ws.CloseCleanlyAsync();
    }
}

/// <summary>rsgi_app.py on a Unix domain socket.</summary>
public sealed class RsgiUdsServer : RsgiAppServer
{
    private readonly ScratchDir _dir = new();
    public string SocketPath => _dir.File("r.sock");

    protected override async Task<string[]> OptionsAsync() => [.. await base.OptionsAsync(), "--uds", SocketPath];

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>RSGI over a Unix socket: server is the socket's path, client is "" (Granian's test_uds).</summary>
public sealed class RsgiUnixSocketTests(RsgiUdsServer fixture) : ProtoServerTests<RsgiUdsServer>(fixture)
{
    [Fact]
    public async Task The_scope_server_is_the_socket_path_and_client_is_empty()
    {
        Assert.Equal("unix:" + Fixture.SocketPath, Server.Url);
        var result = await Curl.OkAsync("--unix-socket", Fixture.SocketPath, "http://granian/info?test=true");
        Assert.Equal("application/json", result.Headers.Split("\r\n").Select(h => h.Split(':', 2)).Where(p => p.Length == 2)
            .Single(p => p[0].Equals("content-type", StringComparison.OrdinalIgnoreCase))[1].Trim());
        var scope = result.Json;
        Assert.Equal("http", scope.Str("proto"));
        Assert.Equal("1.1", scope.Str("http_version"));
        Assert.Equal("1.6", scope.Str("rsgi_version"));
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("GET", scope.Str("method"));
        Assert.Equal("/info", scope.Str("path"));
        Assert.Equal("test=true", scope.Str("query_string"));
        Assert.Equal("granian", scope.GetProperty("headers").Str("host"));
        Assert.Equal(JsonValueKind.Null, scope.GetProperty("authority").ValueKind);
        Assert.Equal(Fixture.SocketPath, scope.Str("server"));
        Assert.Equal("", scope.Str("client"));
    }

    [Fact]
    public async Task Http2_over_the_socket()
    {
        var result = await Curl.OkAsync("--unix-socket", Fixture.SocketPath, "--http2-prior-knowledge", "http://localhost/info");
        Assert.Equal("2", result.HttpVersion);
        Assert.Equal("2", result.Json.Str("http_version"));
        Assert.Equal(Fixture.SocketPath, result.Json.Str("server"));
    }

    [Fact]
    public async Task A_body_over_the_socket()
    {
        var result = await Curl.OkAsync("--unix-socket", Fixture.SocketPath, "--data-binary", "over the socket", "http://localhost/echo");
        Assert.Equal("over the socket", result.BodyText);
    }
}

/// <summary>RSGI over TLS and a Unix socket at once, and with --ssl-protocol-min tls1.2: a server each.</summary>
public sealed class RsgiTransportProcessTests
{
    [Fact]
    public async Task Https_over_a_Unix_socket_has_scheme_https_and_server_the_path()
    {
        // As Granian's test_uds test_https[rsgi].
        var pki = await TestPki.GetAsync();
        using var dir = new ScratchDir();
        var socket = dir.File("t.sock");
        await using var server = await ProtoServer.StartAsync(RsgiAppServer.AppName, "--interface", "rsgi", "--uds", socket,
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey);
        var result = await Curl.OkAsync("--cacert", pki.CaCert, "--unix-socket", socket, "https://localhost/info?test=true");
        var scope = result.Json;
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal("test=true", scope.Str("query_string"));
        Assert.Equal(socket, scope.Str("server"));
        Assert.Equal("", scope.Str("client"));
    }

    [Fact]
    public async Task Protocol_min_tls1_2_serves_a_TLS_1_2_client_and_the_default_refuses_it()
    {
        // As Granian's test_tls_protocol[rsgi].
        var pki = await TestPki.GetAsync();
        await using (var server = await ProtoServer.StartAsync(RsgiAppServer.AppName, "--interface", "rsgi",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, "--ssl-protocol-min", "tls1.2"))
        {
            var result = await Curl.RunAsync("--cacert", pki.CaCert, "--tls-max", "1.2", "-v", server.Base + "/info");
            Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
            Assert.Contains("TLSv1.2", result.Run.Stderr);
            Assert.Equal("https", result.Json.Str("scheme"));
        }
        await using (var server = await ProtoServer.StartAsync(RsgiAppServer.AppName, "--interface", "rsgi",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey))
        {
            var refused = await Curl.RunAsync("--cacert", pki.CaCert, "--tls-max", "1.2", server.Base + "/info");
            Assert.True(refused.ExitCode != 0 && refused.Status == 0, $"a TLS 1.2 client was served\n{refused}");
            var tls13 = await Curl.RunAsync("--cacert", pki.CaCert, "--tlsv1.3", "-v", server.Base + "/info");
            Assert.True(tls13.ExitCode == 0 && tls13.Status == 200, tls13.ToString());
            Assert.Contains("TLSv1.3", tls13.Run.Stderr);
        }
    }
}
