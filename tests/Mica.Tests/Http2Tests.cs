using System.Net;
using System.Text.RegularExpressions;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>proto_asgi:app with the default --http auto: HTTP/1.1 and HTTP/2 on one port.</summary>
public sealed class Http2AutoServer : ProtoServerFixture
{
    protected override string App => "proto_asgi:app";
}

/// <summary>HTTP/2 with --http auto (the default): cleartext by prior knowledge next to HTTP/1.1.</summary>
public sealed partial class Http2Tests(Http2AutoServer fixture) : ProtoServerTests<Http2AutoServer>(fixture)
{
    [Fact]
    public async Task Curl_prior_knowledge_gets_HTTP2_and_the_scope_says_2()
    {
        var result = await Curl.OkAsync("--http2-prior-knowledge", Server.Base + "/x");
        Assert.Equal("2", result.HttpVersion);
        var scope = result.Json.GetProperty("scope");
        Assert.Equal("2", scope.Str("http_version"));
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("/x", scope.Str("path"));
    }

    [Fact]
    public async Task Curl_upgrade_h2c_switches_and_the_request_itself_is_answered_over_HTTP2()
    {
        // curl --http2 on cleartext sends "Upgrade: h2c" with HTTP2-Settings; the 101 is followed by
        // the response to that very request as HTTP/2 stream 1, with its path, query and headers.
        var result = await Curl.OkAsync("--http2", "-H", "X-Probe: h2c", Server.Base + "/upgraded?q=1");
        Assert.Equal("2", result.HttpVersion);
        var scope = result.Json.GetProperty("scope");
        Assert.Equal("2", scope.Str("http_version"));
        Assert.Equal("/upgraded", scope.Str("path"));
        Assert.Equal("q=1", scope.Str("query_string"));
        Assert.Contains("h2c", result.Json.GetRawText(), StringComparison.Ordinal);
        var after = await Curl.OkAsync("--http2", Server.Base + "/second");
        Assert.Equal("2", after.HttpVersion);
    }

    [Fact]
    public async Task An_upgrade_h2c_request_with_a_body_stays_HTTP1_1()
    {
        var result = await Curl.OkAsync("--http2", "-d", "payload", Server.Base + "/post");
        Assert.Equal("1.1", result.HttpVersion);
    }

    [Fact]
    public async Task HttpClient_prior_knowledge_gets_HTTP2_with_a_request_body()
    {
        using var client = Clients.Http2(Server.Base);
        using var response = await client.PostAsync("/echo?q=1", new StringContent("hello over h2"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        Assert.Equal(HttpVersion.Version20, response.Version);
        var payload = Json.Parse(text);
        Assert.Equal("2", payload.GetProperty("scope").Str("http_version"));
        Assert.Equal("POST", payload.GetProperty("scope").Str("method"));
        Assert.Equal("q=1", payload.GetProperty("scope").Str("query_string"));
        Assert.Equal("hello over h2", payload.Str("body"));
    }

    [Fact]
    public async Task Httpx_prior_knowledge_50_concurrent_requests_are_all_HTTP2()
    {
        var summary = await Httpx.GetAsync(Server.Base + "/x", n: 50, h2Only: true);
        Assert.Equal(50, summary.GetProperty("versions").Int("HTTP/2"));
        Assert.Equal(50, summary.GetProperty("statuses").Int("200"));
        Assert.Equal("2", Json.Parse(summary.GetProperty("bodies")[0].GetString()!).GetProperty("scope").Str("http_version"));
    }

    [Fact]
    public async Task A_4_MiB_request_body_over_HTTP2_arrives_whole()
    {
        // Larger than the default stream and connection windows (1 MiB): flow control must be replenished.
        var data = System.Security.Cryptography.RandomNumberGenerator.GetBytes(4 * 1024 * 1024);
        using var client = Clients.Http2(Server.Base);
        using var response = await client.PostAsync("/digest", new ByteArrayContent(data));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        Assert.Equal(HttpVersion.Version20, response.Version);
        var digest = Json.Parse(text);
        Assert.Equal(data.Length, digest.Int("length"));
        Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data)).ToLowerInvariant(), digest.Str("sha256"));
    }

    [Fact]
    public async Task HTTP1_1_and_HTTP2_are_served_on_the_same_port_at_the_same_time()
    {
        // An HTTP/2 stream is kept open while HTTP/1.1 and other HTTP/2 requests are served.
        var key = Keys.New();
        using var h2 = Clients.Http2(Server.Base);
        using var open = await h2.GetAsync($"/stream?key={key}&n=40&delay=0.05", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, open.Version);
        await using var body = await open.Content.ReadAsStreamAsync();
        var first = new byte[8];
        await body.ReadAtLeastAsync(first, 1);

        using var h1 = Clients.Http11(Server.Base);
        var both = await Task.WhenAll(
            h1.GetStringAsync("/h1"),
            h2.GetStringAsync("/h2"),
            Curl.OkAsync("--http2-prior-knowledge", Server.Base + "/curl-h2").ContinueWith(t => t.Result.BodyText),
            Curl.OkAsync("--http1.1", Server.Base + "/curl-h1").ContinueWith(t => t.Result.BodyText));
        Assert.Equal("1.1", Json.Parse(both[0]).GetProperty("scope").Str("http_version"));
        Assert.Equal("2", Json.Parse(both[1]).GetProperty("scope").Str("http_version"));
        Assert.Equal("2", Json.Parse(both[2]).GetProperty("scope").Str("http_version"));
        Assert.Equal("1.1", Json.Parse(both[3]).GetProperty("scope").Str("http_version"));

        var rest = await new StreamReader(body).ReadToEndAsync();
        Assert.EndsWith("chunk 39\n", rest);
        await Mica.WaitForStdoutAsync($"proto-complete {key} 40");
    }

    [Fact]
    public async Task H2load_5000_requests_100_streams_on_one_connection_all_succeed()
    {
        var run = (await Tool.RunAsync("h2load", ["-c", "1", "-m", "100", "-n", "5000", Server.Base + "/hello"], TimeSpan.FromSeconds(60))).Ok();
        var requests = RequestsLine().Match(run.Stdout);
        Assert.True(requests.Success, run.ToString());
        Assert.True(requests.Groups["done"].Value == "5000" && requests.Groups["ok"].Value == "5000" && requests.Groups["failed"].Value == "0"
            && requests.Groups["errored"].Value == "0" && requests.Groups["timeout"].Value == "0", run.ToString());
        var status = StatusLine().Match(run.Stdout);
        Assert.True(status.Success && status.Groups["s2xx"].Value == "5000", run.ToString());
        Assert.Contains("Application protocol: h2c", run.Stdout);
    }

    [Fact]
    public async Task A_reset_stream_reaches_the_app_as_disconnect_and_the_other_stream_on_the_connection_completes()
    {
        var cancelled = Keys.New();
        var survivor = Keys.New();
        using var client = Clients.Http2(Server.Base);   // one SocketsHttpHandler: one HTTP/2 connection for both

        using var a = await client.GetAsync($"/stream?key={cancelled}&delay=0.05", HttpCompletionOption.ResponseHeadersRead);
        using var b = await client.GetAsync($"/stream?key={survivor}&n=30&delay=0.05", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, a.Version);
        Assert.Equal(HttpVersion.Version20, b.Version);
        Assert.Equal(a.Headers.GetValues("x-client-port").Single(), b.Headers.GetValues("x-client-port").Single());

        var aBody = await a.Content.ReadAsStreamAsync();
        var bBody = await b.Content.ReadAsStreamAsync();
        var scratch = new byte[64];
        await aBody.ReadAtLeastAsync(scratch, 1);
        await bBody.ReadAtLeastAsync(scratch, 1);

        // Disposing a response whose body is unread cancels its stream (RST_STREAM); the connection stays.
        var mark = Mica.Mark();
        aBody.Dispose();
        a.Dispose();
        await Mica.WaitForStdoutAsync($"proto-disconnect {cancelled}", TimeSpan.FromSeconds(10), mark);

        var rest = await new StreamReader(bBody).ReadToEndAsync();
        Assert.EndsWith("chunk 29\n", rest);
        await Mica.WaitForStdoutAsync($"proto-complete {survivor} 30", TimeSpan.FromSeconds(10));
        Assert.DoesNotContain(Mica.StdoutLines, l => l.Contains($"proto-disconnect {survivor}", StringComparison.Ordinal));
        Assert.DoesNotContain(Mica.StdoutLines, l => l.Contains($"proto-send-error {survivor}", StringComparison.Ordinal));

        // The same connection still serves new streams.
        using var c = await client.GetAsync("/hello");
        Assert.Equal(HttpStatusCode.OK, c.StatusCode);
    }

    [Fact]
    public async Task Default_SETTINGS_announce_200_max_concurrent_streams()
    {
        var run = (await Tool.RunAsync("nghttp", ["-nv", Server.Base + "/hello"], TimeSpan.FromSeconds(15))).Ok();
        Assert.Matches(@"recv SETTINGS frame[\s\S]*?SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):200\]", run.Stdout);
    }

    [GeneratedRegex(@"requests: (?<total>\d+) total, (?<started>\d+) started, (?<done>\d+) done, (?<ok>\d+) succeeded, (?<failed>\d+) failed, (?<errored>\d+) errored, (?<timeout>\d+) timeout")]
    private static partial Regex RequestsLine();

    [GeneratedRegex(@"status codes: (?<s2xx>\d+) 2xx, (?<s3xx>\d+) 3xx, (?<s4xx>\d+) 4xx, (?<s5xx>\d+) 5xx")]
    private static partial Regex StatusLine();
}

/// <summary>--http 1 and --http 2, --http2-max-concurrent-streams, WSGI over HTTP/2: a server each.</summary>
public sealed class Http2TestsWithOptions
{
    [Fact]
    public async Task Http_1_refuses_prior_knowledge_HTTP2_and_serves_HTTP1_1()
    {
        await using var server = await ProtoServer.StartAsync("proto_asgi:app", "--http", "1");
        var h2 = await Curl.RunAsync("--http2-prior-knowledge", server.Base + "/x");
        Assert.False(h2.ExitCode == 0 && h2.HttpVersion == "2", $"--http 1 answered HTTP/2\n{h2}");
        Assert.NotEqual(200, h2.Status);

        using (var client = Clients.Http2(server.Base))
            await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("/x"));

        var h1 = await Curl.OkAsync("--http1.1", server.Base + "/x");
        Assert.Equal("1.1", h1.Json.GetProperty("scope").Str("http_version"));
        Assert.True(server.IsAlive, server.Mica.Dump());
    }

    [Fact]
    public async Task Http_2_serves_prior_knowledge()
    {
        await using var server = await ProtoServer.StartAsync("proto_asgi:app", "--http", "2");
        var result = await Curl.OkAsync("--http2-prior-knowledge", server.Base + "/x");
        Assert.Equal("2", result.HttpVersion);
        Assert.Equal("2", result.Json.GetProperty("scope").Str("http_version"));
        using var client = Clients.Http2(server.Base);
        using var response = await client.GetAsync("/hello");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(HttpVersion.Version20, response.Version);
    }

    [Fact]
    public async Task Max_concurrent_streams_10_is_announced_in_SETTINGS()
    {
        await using var server = await ProtoServer.StartAsync("proto_asgi:app", "--http2-max-concurrent-streams", "10");
        var run = (await Tool.RunAsync("nghttp", ["-nv", server.Base + "/hello"], TimeSpan.FromSeconds(15))).Ok();
        Assert.Matches(@"recv SETTINGS frame[\s\S]*?SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):10\]", run.Stdout);

        // A client using the 10 streams announced gets every response. (Not more: a client opening 100
        // streams before it has read the SETTINGS has the excess refused, as RFC 9113 allows.)
        var load = (await Tool.RunAsync("h2load", ["-c", "1", "-m", "10", "-n", "500", server.Base + "/hello"], TimeSpan.FromSeconds(60))).Ok();
        Assert.Contains("500 succeeded, 0 failed, 0 errored, 0 timeout", load.Stdout);
    }

    [Fact]
    public async Task Wsgi_app_over_HTTP2_sees_SERVER_PROTOCOL_HTTP_2()
    {
        await using var server = await ProtoServer.StartAsync("proto_wsgi:app", "--interface", "wsgi");
        var h2 = await Curl.OkAsync("--http2-prior-knowledge", server.Base + "/w?a=b");
        Assert.Equal("2", h2.HttpVersion);
        Assert.Equal("HTTP/2", h2.Json.Str("SERVER_PROTOCOL"));
        Assert.Equal("/w", h2.Json.Str("PATH_INFO"));
        Assert.Equal("a=b", h2.Json.Str("QUERY_STRING"));
        var h1 = await Curl.OkAsync("--http1.1", server.Base + "/w");
        Assert.Equal("HTTP/1.1", h1.Json.Str("SERVER_PROTOCOL"));
    }
}
