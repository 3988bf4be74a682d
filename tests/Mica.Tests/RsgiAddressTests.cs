using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The RSGI scope's client, server and scheme behind a trusted proxy (127.0.0.1 is trusted by
/// default): "host:port" strings, IPv6 in brackets as Granian writes them.
/// </summary>
public sealed class RsgiProxyHeadersTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    [Fact]
    public async Task Forwarded_client_and_proto_become_the_scopes_client_and_scheme()
    {
        var scope = await Rsgi.InfoAsync(Mica, "/info", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https");
        Assert.Equal("203.0.113.7:0", scope.Str("client"));
        Assert.Equal("https", scope.Str("scheme"));
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("server"));
        Assert.Equal("203.0.113.7", scope.GetProperty("headers").Str("x-forwarded-for"));   // the headers themselves reach the app
    }

    [Fact]
    public async Task A_forwarded_IPv6_client_is_written_in_brackets()
    {
        var scope = await Rsgi.InfoAsync(Mica, "/info", "Forwarded: for=\"[2001:db8::1]:4711\";proto=https");
        Assert.Equal("[2001:db8::1]:4711", scope.Str("client"));
        Assert.Equal("https", scope.Str("scheme"));
    }

    [Fact]
    public async Task A_websocket_behind_a_proxy_has_scheme_https()
    {
        await using var raw = await RawWebSocket.ConnectAsync(Mica, "/ws_info", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https");
        Assert.Equal(101, raw.Response.Status);
        var scope = Json.Parse((await raw.ReceiveDataOrCloseAsync()).Payload);
        Assert.Equal("ws", scope.Str("proto"));
        Assert.Equal("https", scope.Str("scheme"));   // RSGI keeps http/https for websockets
        Assert.Equal("203.0.113.7:0", scope.Str("client"));
    }

    [Fact]
    public async Task The_next_request_on_the_connection_has_the_connections_values_again()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/info", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"));
        var first = Json.Parse((await connection.ReadResponseAsync()).Body);
        await connection.SendAsync(RawConnection.Get("/info"));
        var second = Json.Parse((await connection.ReadResponseAsync()).Body);
        Assert.Equal(("203.0.113.7:0", "https"), (first.Str("client"), first.Str("scheme")));
        Assert.Equal(($"127.0.0.1:{connection.LocalEndPoint.Port}", "http"), (second.Str("client"), second.Str("scheme")));
    }
}

/// <summary>Addresses that need a server of their own: an IPv6 listener, an untrusted peer.</summary>
public sealed class RsgiAddressProcessTests
{
    [Fact]
    public async Task On_an_IPv6_listener_server_and_client_are_in_brackets()
    {
        await using var server = await ProtoServer.StartAsync(RsgiAppServer.AppName, "--interface", "rsgi", "--host", "::1");
        var result = await Curl.OkAsync("-g", $"http://[::1]:{server.Port}/info");
        var scope = result.Json;
        Assert.Equal($"[::1]:{server.Port}", scope.Str("server"));
        Assert.Matches(@"^\[::1\]:\d+$", scope.Str("client"));
        Assert.NotEqual($"[::1]:{server.Port}", scope.Str("client"));
    }

    [Fact]
    public async Task Proxy_headers_from_an_untrusted_peer_are_ignored()
    {
        await using var server = await ProtoServer.StartAsync(RsgiAppServer.AppName, "--interface", "rsgi", "--forwarded-allow-ips", "10.0.0.1");
        await using var connection = await RawConnection.ConnectAsync(server.Mica);
        await connection.SendAsync(Rsgi.Request("GET", "/info", "X-Forwarded-For: 203.0.113.7", "X-Forwarded-Proto: https"));
        var response = await connection.ReadResponseAsync();
        var scope = Json.Parse(response.Body);
        Assert.Equal($"127.0.0.1:{connection.LocalEndPoint.Port}", scope.Str("client"));
        Assert.Equal("http", scope.Str("scheme"));
    }
}
