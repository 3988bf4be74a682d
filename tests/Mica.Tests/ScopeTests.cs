using System.Text.Json;
using System.Text.RegularExpressions;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Every field of the ASGI http scope, observed by scope_echo.py (served with --url-path-prefix /api).</summary>
public sealed class ScopeTests(EchoServer server) : ServerTests<EchoServer>(server)
{
    /// <summary>Sends <paramref name="request"/> on a new connection; returns the echoed payload and the client's local port.</summary>
    private async Task<(JsonElement Payload, int ClientPort, RawResponse Response)> EchoAsync(string request)
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(request);
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"status {response.Status}: {response.BodyText}");
        return (Json.Parse(response.Body), connection.LocalEndPoint.Port, response);
    }

    private async Task<JsonElement> ScopeAsync(string target, params string[] headers) =>
        (await EchoAsync(RawConnection.Get(target, headers))).Payload.GetProperty("scope");

    [Fact]
    public async Task Type_is_http_and_asgi_versions_are_given()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/x"));
        var scope = payload.GetProperty("scope");
        Assert.Equal("http", scope.Str("type"));
        var asgi = scope.GetProperty("asgi");
        Assert.Equal(JsonValueKind.Object, asgi.ValueKind);
        Assert.Equal("3.0", asgi.Str("version"));
        Assert.Matches(@"^2\.\d+$", asgi.Str("spec_version"));
        Assert.Equal("dict", payload.GetProperty("types").Str("asgi"));
    }

    [Fact]
    public async Task Http_version_is_1_1_for_HTTP_1_1()
    {
        var scope = await ScopeAsync("/api/x");
        Assert.Equal("1.1", scope.Str("http_version"));
    }

    [Fact]
    public async Task Http_version_is_1_0_for_HTTP_1_0()
    {
        var (payload, _, response) = await EchoAsync("GET /api/x HTTP/1.0\r\nHost: localhost\r\n\r\n");
        Assert.Equal("1.0", payload.GetProperty("scope").Str("http_version"));
        Assert.StartsWith("HTTP/1.", response.Version);
    }

    [Fact]
    public async Task Scheme_is_http()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/x"));
        Assert.Equal("http", payload.GetProperty("scope").Str("scheme"));
        Assert.Equal("str", payload.GetProperty("types").Str("scheme"));
    }

    [Fact]
    public async Task Server_is_the_listening_host_and_port()
    {
        var scope = await ScopeAsync("/api/x");
        var serverField = scope.GetProperty("server");
        Assert.Equal(2, serverField.GetArrayLength());
        Assert.Equal("127.0.0.1", serverField[0].GetString());
        Assert.Equal(Mica.Port, serverField[1].GetInt32());
    }

    [Fact]
    public async Task Client_is_the_peer_host_and_port()
    {
        var (payload, clientPort, _) = await EchoAsync(RawConnection.Get("/api/x"));
        var client = payload.GetProperty("scope").GetProperty("client");
        Assert.Equal(2, client.GetArrayLength());
        Assert.Equal("127.0.0.1", client[0].GetString());
        Assert.Equal(clientPort, client[1].GetInt32());
    }

    [Theory]
    [InlineData("GET")]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    [InlineData("OPTIONS")]
    [InlineData("PURGE")]
    public async Task Method_is_passed_as_sent(string method)
    {
        var (payload, _, _) = await EchoAsync($"{method} /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal(method, payload.GetProperty("scope").Str("method"));
        Assert.Equal("str", payload.GetProperty("types").Str("method"));
    }

    [Fact]
    public async Task Root_path_is_the_url_path_prefix()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/items/1"));
        Assert.Equal(EchoServer.Prefix, payload.GetProperty("scope").Str("root_path"));
        Assert.Equal("str", payload.GetProperty("types").Str("root_path"));
    }

    [Fact]
    public async Task Path_is_percent_decoded_and_raw_path_is_kept()
    {
        const string rawPath = "/api/caf%C3%A9/a%2Fb/%7Euser/sp%20ace";
        var (payload, _, _) = await EchoAsync(RawConnection.Get(rawPath + "?x=%2F"));
        var scope = payload.GetProperty("scope");
        Assert.Equal("/api/café/a/b/~user/sp ace", scope.Str("path"));
        Assert.Equal(rawPath, scope.Str("raw_path"));   // latin-1 view of the bytes: unchanged
        var types = payload.GetProperty("types");
        Assert.Equal("str", types.Str("path"));
        Assert.Equal("bytes", types.Str("raw_path"));
    }

    [Fact]
    public async Task Query_string_is_the_raw_bytes_after_the_question_mark()
    {
        const string query = "a=1&b=%20x&c=%C3%A9&d=hello+world&e&a=2";
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/q?" + query));
        var scope = payload.GetProperty("scope");
        Assert.Equal(query, scope.Str("query_string"));
        Assert.Equal("/api/q", scope.Str("path"));
        Assert.Equal("/api/q", scope.Str("raw_path"));
        Assert.Equal("bytes", payload.GetProperty("types").Str("query_string"));
    }

    [Fact]
    public async Task Query_string_is_empty_bytes_without_a_query()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/q"));
        Assert.Equal("", payload.GetProperty("scope").Str("query_string"));
        Assert.Equal("bytes", payload.GetProperty("types").Str("query_string"));
    }

    [Fact]
    public async Task Header_values_are_the_bytes_the_client_sent_even_beyond_ASCII()
    {
        // "\u00c3\u00a9" goes out as the two bytes of UTF-8 "é"; "\u00e9" as the one latin-1 byte.
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/h", "X-Utf8: caf\u00c3\u00a9", "X-Latin1: caf\u00e9"));
        var headers = payload.GetProperty("scope").GetProperty("headers").EnumerateArray()
            .Select(h => (Name: h[0].GetString()!, Value: h[1].GetString()!)).ToList();
        Assert.Equal("caf\u00c3\u00a9", Assert.Single(headers, h => h.Name == "x-utf8").Value);
        Assert.Equal("caf\u00e9", Assert.Single(headers, h => h.Name == "x-latin1").Value);
    }

    [Fact]
    public async Task Headers_are_lowercased_byte_pairs_with_repeats_in_order()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/h",
            "X-MiXeD-Case: Keep The Value Case", "X-Dup: first", "X-Other: o", "X-Dup: second", "X-Dup: third"));
        var headers = payload.GetProperty("scope").GetProperty("headers").EnumerateArray()
            .Select(h => (Name: h[0].GetString()!, Value: h[1].GetString()!)).ToList();

        Assert.All(payload.GetProperty("header_types").EnumerateArray(), t => Assert.EndsWith("[bytes,bytes]", t.GetString()));
        Assert.All(headers, h => Assert.Equal(h.Name.ToLowerInvariant(), h.Name));
        Assert.Equal(new[] { "first", "second", "third" }, headers.Where(h => h.Name == "x-dup").Select(h => h.Value));
        Assert.Equal("Keep The Value Case", Assert.Single(headers, h => h.Name == "x-mixed-case").Value);
        Assert.Equal("o", Assert.Single(headers, h => h.Name == "x-other").Value);
        Assert.Equal("localhost", Assert.Single(headers, h => h.Name == "host").Value);
    }

    [Fact]
    public async Task State_is_a_per_request_copy_of_the_lifespan_state()
    {
        var (first, _, _) = await EchoAsync(RawConnection.Get("/api/mutate-state"));
        var before = first.GetProperty("state_before");
        Assert.Equal("hello from lifespan", before.Str("greeting"));
        Assert.Equal(42, before.Int("answer"));
        Assert.Equal("dict", first.GetProperty("types").Str("state"));

        var (second, _, _) = await EchoAsync(RawConnection.Get("/api/after-mutation"));
        var state = second.GetProperty("scope").GetProperty("state");
        Assert.Equal("hello from lifespan", state.Str("greeting"));
        Assert.Equal(42, state.Int("answer"));
        Assert.False(state.TryGetProperty("added_by_request", out _), "a key added by an earlier request leaked into the next one: " + state);
    }

    [Fact]
    public async Task Request_without_body_receives_one_empty_http_request_message()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/x"));
        var first = payload.GetProperty("first_receive");
        Assert.Equal("http.request", first.Str("type"));
        Assert.False(first.Bool("more_body"));
        Assert.Equal("bytes", first.Str("body_type"));
        Assert.Equal("", payload.Str("body"));
    }

    [Fact]
    public async Task Small_body_is_delivered_to_the_app()
    {
        var (payload, _, _) = await EchoAsync("POST /api/x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world");
        Assert.Equal("hello world", payload.Str("body"));
        Assert.Equal("POST", payload.GetProperty("scope").Str("method"));
    }

    [Fact]
    public async Task Scope_has_no_unexpected_types()
    {
        var (payload, _, _) = await EchoAsync(RawConnection.Get("/api/x"));
        var types = payload.GetProperty("types");
        Assert.Equal("str", types.Str("type"));
        Assert.Equal("str", types.Str("http_version"));
        Assert.Equal("str", types.Str("path"));
        Assert.Equal("bytes", types.Str("raw_path"));
        Assert.Equal("bytes", types.Str("query_string"));
        Assert.Matches("^(tuple|list)$", types.Str("server"));
        Assert.Matches("^(tuple|list)$", types.Str("client"));
        Assert.Matches("^(tuple|list)$", types.Str("headers"));
    }

    [Fact]
    public void Default_event_loop_is_uvloop_when_installed()
    {
        Assert.Contains(Mica.StderrLines, l => Regex.IsMatch(l, @"\[INFO\] Python 3\.\d+ \(/usr/bin/python3\), uvloop event loop, interface asgi"));
    }
}
