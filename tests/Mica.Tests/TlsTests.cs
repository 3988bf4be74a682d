using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>proto_asgi:app over TLS with the test server certificate (default --ssl-protocol-min tls1.3).</summary>
public sealed class TlsServer : ProtoServerFixture
{
    protected override string App => "proto_asgi:app";
    protected override async Task<string[]> OptionsAsync()
    {
        var pki = await TestPki.GetAsync();
        return ["--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey];
    }
}

/// <summary>HTTPS: verified certificate, ALPN, scheme, the ASGI tls extension, wss, minimum protocol.</summary>
public sealed partial class TlsTests(TlsServer fixture) : ProtoServerTests<TlsServer>(fixture)
{
    private static async Task<CurlResult> HttpsAsync(string url, params string[] args)
    {
        var pki = await TestPki.GetAsync();
        return await Curl.RunAsync(["--cacert", pki.CaCert, .. args, url]);
    }

    [Fact]
    public async Task Serves_https_with_a_certificate_verified_by_the_CA_and_scheme_https()
    {
        Assert.StartsWith("https://", Server.Url);
        var result = await HttpsAsync(Server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal("https", result.Json.GetProperty("scope").Str("scheme"));
        // localhost is in the certificate too.
        var byName = await HttpsAsync($"https://localhost:{Server.Port}/x", "--resolve", $"localhost:{Server.Port}:127.0.0.1");
        Assert.True(byName.ExitCode == 0 && byName.Status == 200, byName.ToString());
    }

    [Fact]
    public async Task Alpn_h2_gives_HTTP2()
    {
        var result = await HttpsAsync(Server.Base + "/x", "--http2");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal("2", result.HttpVersion);
        var scope = result.Json.GetProperty("scope");
        Assert.Equal("2", scope.Str("http_version"));
        Assert.Equal("https", scope.Str("scheme"));
    }

    [Fact]
    public async Task Alpn_http1_1_gives_HTTP1_1()
    {
        var result = await HttpsAsync(Server.Base + "/x", "--http1.1");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal("1.1", result.HttpVersion);
        Assert.Equal("1.1", result.Json.GetProperty("scope").Str("http_version"));
    }

    [Fact]
    public async Task HttpClient_over_TLS_negotiates_HTTP2()
    {
        var pki = await TestPki.GetAsync();
        using var client = Clients.Http2(Server.Base, pki);
        using var response = await client.GetAsync("/x");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("https", Json.Parse(text).GetProperty("scope").Str("scheme"));
    }

    [Fact]
    public async Task Httpx_over_TLS_negotiates_HTTP2_for_20_concurrent_requests()
    {
        var pki = await TestPki.GetAsync();
        var summary = await Httpx.GetAsync(Server.Base + "/x", n: 20, cacert: pki.CaCert);
        Assert.Equal(20, summary.GetProperty("versions").Int("HTTP/2"));
        Assert.Equal(20, summary.GetProperty("statuses").Int("200"));
        Assert.Equal("https", Json.Parse(summary.GetProperty("bodies")[0].GetString()!).GetProperty("scope").Str("scheme"));
    }

    [Fact]
    public async Task Tls_extension_gives_server_cert_no_client_cert_TLS_1_3_and_the_cipher_suite()
    {
        var pki = await TestPki.GetAsync();
        var result = await HttpsAsync(Server.Base + "/x", "-v");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        var scope = result.Json.GetProperty("scope");
        var extensions = scope.GetProperty("extensions");
        Assert.True(extensions.TryGetProperty("tls", out var tls), $"no tls extension in {extensions}");

        Assert.Equal(JsonValueKind.String, tls.GetProperty("server_cert").ValueKind);
        Assert.Equal(TestPki.Der(await File.ReadAllTextAsync(pki.ServerCert)), TestPki.Der(tls.Str("server_cert")));
        Assert.Equal(JsonValueKind.Array, tls.GetProperty("client_cert_chain").ValueKind);
        Assert.Equal(0, tls.GetProperty("client_cert_chain").GetArrayLength());
        Assert.Equal(JsonValueKind.Null, tls.GetProperty("client_cert_name").ValueKind);
        Assert.Equal(JsonValueKind.Null, tls.GetProperty("client_cert_error").ValueKind);
        Assert.Equal(0x0304, tls.Int("tls_version"));

        // The cipher suite is the one curl negotiated, as its IANA number.
        var negotiated = CurlCipher().Match(result.Run.Stderr);
        Assert.True(negotiated.Success, result.Run.Stderr);
        var expected = negotiated.Groups["cipher"].Value switch
        {
            "TLS_AES_128_GCM_SHA256" => 0x1301,
            "TLS_AES_256_GCM_SHA384" => 0x1302,
            "TLS_CHACHA20_POLY1305_SHA256" => 0x1303,
            var other => throw new InvalidOperationException("unexpected cipher " + other),
        };
        Assert.Equal(expected, tls.Int("cipher_suite"));
    }

    [Fact]
    public async Task Websocket_over_TLS_has_scheme_wss_and_the_tls_extension()
    {
        var pki = await TestPki.GetAsync();
        using var ws = new ClientWebSocket();
        ws.Options.RemoteCertificateValidationCallback = (_, certificate, _, _) => pki.Trusts(certificate);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await ws.ConnectAsync(new Uri($"wss://127.0.0.1:{Server.Port}/ws"), cts.Token);
        var buffer = new byte[256 * 1024];
        var length = 0;
        WebSocketReceiveResult received;
        do
        {
            received = await ws.ReceiveAsync(new ArraySegment<byte>(buffer, length, buffer.Length - length), cts.Token);
            length += received.Count;
        } while (!received.EndOfMessage);
        Assert.Equal(WebSocketMessageType.Text, received.MessageType);
        var scope = Json.Parse(Encoding.UTF8.GetString(buffer, 0, length)).GetProperty("scope");
        Assert.Equal("websocket", scope.Str("type"));
        Assert.Equal("wss", scope.Str("scheme"));
        Assert.True(scope.GetProperty("extensions").TryGetProperty("tls", out var tls), scope.ToString());
        Assert.Equal(0x0304, tls.Int("tls_version"));
    }

    [Fact]
    public async Task A_TLS_1_2_only_client_is_refused_by_default()
    {
        var result = await HttpsAsync(Server.Base + "/x", "--tls-max", "1.2");
        Assert.True(result.ExitCode != 0 && result.Status == 0, $"a TLS 1.2 client was served\n{result}");
        // ...while TLS 1.3 still works.
        var ok = await HttpsAsync(Server.Base + "/x", "--tlsv1.3");
        Assert.True(ok.ExitCode == 0 && ok.Status == 200, ok.ToString());
    }

    [Fact]
    public async Task H2load_over_TLS_2000_requests_on_two_connections_all_succeed()
    {
        var run = (await Tool.RunAsync("h2load", ["-c", "2", "-m", "50", "-n", "2000", Server.Base + "/hello"], TimeSpan.FromSeconds(60))).Ok();
        Assert.Contains("2000 succeeded, 0 failed, 0 errored, 0 timeout", run.Stdout);
        Assert.Contains("status codes: 2000 2xx", run.Stdout);
        Assert.Contains("Application protocol: h2", run.Stdout);
    }

    [Fact]
    public async Task Plain_http_on_the_TLS_port_is_not_served()
    {
        var result = await Curl.RunAsync($"http://127.0.0.1:{Server.Port}/x");
        Assert.NotEqual(200, result.Status);
        var again = await HttpsAsync(Server.Base + "/x");
        Assert.True(again.ExitCode == 0 && again.Status == 200, again.ToString());
    }

    [GeneratedRegex(@"SSL connection using TLSv1\.3 / (?<cipher>\S+)")]
    private static partial Regex CurlCipher();
}

/// <summary>TLS options that need a server each: encrypted keys, TLS 1.2, WSGI; and start-up errors.</summary>
public sealed class TlsTestsWithOptions
{
    private static async Task<(int ExitCode, IReadOnlyList<string> Stderr, TimeSpan Elapsed, MicaProcess Mica)> RunToExitAsync(params string[] args)
    {
        var clock = Stopwatch.StartNew();
        await using var mica = await MicaProcess.LaunchAsync([.. args, "proto_asgi:app"]);
        var exit = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return (exit, mica.ServerStderrLines, clock.Elapsed, mica);
    }

    [Fact]
    public async Task Encrypted_PKCS8_key_works_with_its_password()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKeyEncrypted, "--ssl-keyfile-password", TestPki.KeyPassword);
        var result = await Curl.RunAsync("--cacert", pki.CaCert, server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal("https", result.Json.GetProperty("scope").Str("scheme"));
    }

    [Fact]
    public async Task Wrong_key_password_exits_1_quickly_with_one_line_about_the_key()
    {
        var pki = await TestPki.GetAsync();
        var (exit, stderr, elapsed, mica) = await RunToExitAsync(
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKeyEncrypted, "--ssl-keyfile-password", "wrong");
        var text = string.Join('\n', stderr);
        Assert.True(exit == 1, $"exit code {exit}, expected 1\n{mica.Dump()}");
        Assert.True(stderr.Count == 1, $"expected one line on stderr, got {stderr.Count}:\n{text}");
        Assert.True(stderr[0].Contains("key", StringComparison.OrdinalIgnoreCase) || stderr[0].Contains("protected.pem", StringComparison.Ordinal), text);
        Assert.DoesNotContain(mica.StderrLines, l => l.Contains("Spawned worker", StringComparison.Ordinal));
        Assert.True(elapsed < TimeSpan.FromSeconds(10), $"took {elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public async Task Missing_certificate_file_exits_1_with_one_line_naming_it()
    {
        var pki = await TestPki.GetAsync();
        var missing = Path.Combine(pki.Dir, "no-such-cert.pem");
        var (exit, stderr, _, mica) = await RunToExitAsync("--ssl-certificate", missing, "--ssl-keyfile", pki.ServerKey);
        var text = string.Join('\n', stderr);
        Assert.True(exit == 1, $"exit code {exit}, expected 1\n{mica.Dump()}");
        Assert.True(stderr.Count == 1, $"expected one line on stderr, got {stderr.Count}:\n{text}");
        Assert.Contains("no-such-cert.pem", stderr[0]);
        Assert.DoesNotContain(mica.StderrLines, l => l.Contains("Spawned worker", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Encrypted_key_without_password_exits_1_with_one_line()
    {
        var pki = await TestPki.GetAsync();
        var (exit, stderr, _, mica) = await RunToExitAsync("--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKeyEncrypted);
        Assert.True(exit == 1, $"exit code {exit}, expected 1\n{mica.Dump()}");
        Assert.True(stderr.Count == 1, $"expected one line on stderr, got {stderr.Count}:\n{string.Join('\n', stderr)}");
        Assert.DoesNotContain(mica.StderrLines, l => l.Contains("Spawned worker", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Missing_CRL_file_exits_1_with_one_line_naming_it()
    {
        var pki = await TestPki.GetAsync();
        var (exit, stderr, _, mica) = await RunToExitAsync("--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey,
            "--ssl-ca", pki.CaCert, "--ssl-client-verify", "--ssl-crl", Path.Combine(pki.Dir, "no-such-crl.pem"));
        Assert.True(exit == 1, $"exit code {exit}, expected 1\n{mica.Dump()}");
        Assert.True(stderr.Count == 1, $"expected one line on stderr, got {stderr.Count}:\n{string.Join('\n', stderr)}");
        Assert.Contains("no-such-crl.pem", stderr[0]);
    }

    [Fact]
    public async Task Certificate_without_keyfile_is_a_usage_error()
    {
        var pki = await TestPki.GetAsync();
        var (exit, stderr, _, mica) = await RunToExitAsync("--ssl-certificate", pki.ServerCert);
        Assert.True(exit == 2, $"exit code {exit}, expected 2\n{mica.Dump()}");
        Assert.True(stderr.Count == 1 && stderr[0].StartsWith("mica: error:", StringComparison.Ordinal), string.Join('\n', stderr));
    }

    [Fact]
    public async Task Client_verify_without_ca_is_a_usage_error()
    {
        var pki = await TestPki.GetAsync();
        var (exit, stderr, _, mica) = await RunToExitAsync("--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, "--ssl-client-verify");
        Assert.True(exit == 2, $"exit code {exit}, expected 2\n{mica.Dump()}");
        Assert.True(stderr.Count == 1 && stderr[0].StartsWith("mica: error:", StringComparison.Ordinal), string.Join('\n', stderr));
    }

    [Fact]
    public async Task Protocol_min_tls1_2_serves_a_TLS_1_2_client()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, "--ssl-protocol-min", "tls1.2");
        var result = await Curl.RunAsync("--cacert", pki.CaCert, "--tls-max", "1.2", server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal(0x0303, result.Json.GetProperty("scope").GetProperty("extensions").GetProperty("tls").Int("tls_version"));
        var tls13 = await Curl.RunAsync("--cacert", pki.CaCert, "--tlsv1.3", server.Base + "/x");
        Assert.Equal(0x0304, tls13.Json.GetProperty("scope").GetProperty("extensions").GetProperty("tls").Int("tls_version"));
    }

    [Fact]
    public async Task A_certificate_file_with_its_chain_sends_the_intermediate()
    {
        // The client trusts only the root: the handshake works only if the server sends the intermediate.
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app",
            "--ssl-certificate", pki.ChainedServerFullChain, "--ssl-keyfile", pki.ChainedServerKey);
        var result = await Curl.RunAsync("--cacert", pki.CaCert, server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        var tls = result.Json.GetProperty("scope").GetProperty("extensions").GetProperty("tls");
        Assert.Equal(TestPki.Der(await File.ReadAllTextAsync(pki.ChainedServerLeaf)), TestPki.Der(tls.Str("server_cert")));
    }

    [Fact]
    public async Task Http_1_over_TLS_negotiates_HTTP1_1_when_the_client_offers_h2()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app", "--http", "1",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey);
        var result = await Curl.RunAsync("--cacert", pki.CaCert, "--http2", server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal("1.1", result.HttpVersion);
    }

    [Fact]
    public async Task Wsgi_over_TLS_has_url_scheme_https_and_HTTPS_on()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_wsgi:app", "--interface", "wsgi",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey);
        var result = await Curl.RunAsync("--cacert", pki.CaCert, "--http2", server.Base + "/w");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal("https", result.Json.Str("wsgi.url_scheme"));
        Assert.Equal("on", result.Json.Str("HTTPS"));
        Assert.Equal("HTTP/2", result.Json.Str("SERVER_PROTOCOL"));
    }
}

/// <summary>--ssl-ca without --ssl-client-verify: client certificates are optional, and seen when sent.</summary>
public sealed class TlsOptionalClientCertServer : ProtoServerFixture
{
    protected override string App => "proto_asgi:app";
    protected override async Task<string[]> OptionsAsync()
    {
        var pki = await TestPki.GetAsync();
        return ["--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, "--ssl-ca", pki.CaCert];
    }
}

public sealed class TlsTestsOptionalClientCert(TlsOptionalClientCertServer fixture) : ProtoServerTests<TlsOptionalClientCertServer>(fixture)
{
    [Fact]
    public async Task No_client_certificate_is_served_with_no_name()
    {
        var pki = await TestPki.GetAsync();
        var result = await Curl.RunAsync("--cacert", pki.CaCert, Server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        var tls = result.Json.GetProperty("scope").GetProperty("extensions").GetProperty("tls");
        Assert.Equal(JsonValueKind.Null, tls.GetProperty("client_cert_name").ValueKind);
        Assert.Equal(0, tls.GetProperty("client_cert_chain").GetArrayLength());
    }

    [Fact]
    public async Task A_client_certificate_is_visible_in_the_scope()
    {
        var pki = await TestPki.GetAsync();
        var result = await Curl.RunAsync("--cacert", pki.CaCert, "--cert", pki.Cert("client1"), "--key", pki.Key("client1"), Server.Base + "/x");
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        var tls = result.Json.GetProperty("scope").GetProperty("extensions").GetProperty("tls");
        Assert.Equal("CN=client1", tls.Str("client_cert_name"));
        Assert.Equal(JsonValueKind.Null, tls.GetProperty("client_cert_error").ValueKind);
        var chain = tls.GetProperty("client_cert_chain");
        Assert.True(chain.GetArrayLength() >= 1, tls.ToString());
        Assert.Equal(TestPki.Der(await File.ReadAllTextAsync(pki.Cert("client1"))), TestPki.Der(chain[0].GetString()!));
    }
}

/// <summary>Mutual TLS: --ssl-ca with --ssl-client-verify, without and with a CRL (client1 revoked).</summary>
public sealed class TlsTestsClientVerify
{
    private static async Task<CurlResult> AsClientAsync(ProtoServer server, string? client)
    {
        var pki = await TestPki.GetAsync();
        string[] cert = client is null ? [] : ["--cert", pki.Cert(client), "--key", pki.Key(client)];
        return await Curl.RunAsync(["--cacert", pki.CaCert, .. cert, server.Base + "/x"]);
    }

    private static void AssertRefused(CurlResult result, string who) =>
        Assert.True(result.ExitCode != 0 && result.Status == 0, $"{who} was served\n{result}");

    private static void AssertServedAs(CurlResult result, string name)
    {
        Assert.True(result.ExitCode == 0 && result.Status == 200, result.ToString());
        Assert.Equal(name, result.Json.GetProperty("scope").GetProperty("extensions").GetProperty("tls").Str("client_cert_name"));
    }

    [Fact]
    public async Task Client_verify_refuses_no_certificate_and_a_foreign_CA_and_serves_a_CA_signed_certificate()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, "--ssl-ca", pki.CaCert, "--ssl-client-verify");
        AssertRefused(await AsClientAsync(server, null), "a client without a certificate");
        AssertServedAs(await AsClientAsync(server, "client1"), "CN=client1");
        AssertRefused(await AsClientAsync(server, "stranger"), "a client with a certificate from another CA");
        AssertServedAs(await AsClientAsync(server, "client2"), "CN=client2");
        // Another client stack (Python's ssl through httpx) with a CA-signed certificate.
        var summary = await Httpx.GetAsync(server.Base + "/x", cacert: pki.CaCert, cert: pki.Cert("client2"), key: pki.Key("client2"));
        Assert.Equal(1, summary.GetProperty("statuses").Int("200"));
        Assert.Equal("CN=client2", Json.Parse(summary.GetProperty("bodies")[0].GetString()!).GetProperty("scope").GetProperty("extensions").GetProperty("tls").Str("client_cert_name"));
        Assert.True(server.IsAlive, server.Mica.Dump());
    }

    [Fact]
    public async Task A_CRL_refuses_the_revoked_client_and_serves_the_others()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app",
            "--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, "--ssl-ca", pki.CaCert, "--ssl-client-verify", "--ssl-crl", pki.Crl);
        AssertRefused(await AsClientAsync(server, "client1"), "client1, revoked by the CRL,");
        AssertServedAs(await AsClientAsync(server, "client2"), "CN=client2");
        AssertRefused(await AsClientAsync(server, null), "a client without a certificate");
        Assert.True(server.IsAlive, server.Mica.Dump());
    }
}
