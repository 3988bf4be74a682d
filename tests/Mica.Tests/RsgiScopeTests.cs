using System.Net;
using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The RSGI HTTP scope (rsgi_app.py /info): every attribute with Granian's values, and the
/// Headers object through each of its methods (repeated headers, case-insensitive lookups).
/// </summary>
public sealed class RsgiScopeTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    [Fact]
    public async Task Http_scope_has_every_attribute_as_Granian_gives_it()
    {
        // As Granian's test_scope: GET /info?test=true.
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"GET /info?test=true HTTP/1.1\r\nHost: localhost:{Server.Port}\r\nConnection: close\r\n\r\n");
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"{response.Status} {response.BodyText}");
        Assert.Equal("application/json", response.Header("content-type"));
        var scope = Json.Parse(response.Body);
        Assert.Equal("http", scope.Str("proto"));
        Assert.Equal("1.1", scope.Str("http_version"));
        Assert.Equal("1.6", scope.Str("rsgi_version"));
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal("GET", scope.Str("method"));
        Assert.Equal("/info", scope.Str("path"));
        Assert.Equal("test=true", scope.Str("query_string"));
        Assert.Equal($"localhost:{Server.Port}", scope.GetProperty("headers").Str("host"));
        Assert.Equal(JsonValueKind.Null, scope.GetProperty("authority").ValueKind);
        // server: the listening address; client: this connection's address and port.
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("server"));
        Assert.Equal($"127.0.0.1:{connection.LocalEndPoint.Port}", scope.Str("client"));

        var types = scope.GetProperty("types");
        Assert.True(types.Bool("scope_is_Scope"), types.ToString());
        Assert.True(types.Bool("headers_is_Headers"), types.ToString());
        Assert.True(scope.Bool("protocol_is_HTTPProtocol"));
        foreach (var attribute in types.GetProperty("attributes").EnumerateObject())
            Assert.True(attribute.Value.GetString() == (attribute.Name == "authority" ? "NoneType" : "str"), $"{attribute.Name} is a {attribute.Value}");
    }

    [Fact]
    public async Task The_scope_is_read_only()
    {
        var scope = await Rsgi.InfoAsync(Mica);
        Assert.Equal("AttributeError", scope.Str("readonly"));
        Assert.Equal("/info", scope.Str("path"));
    }

    [Fact]
    public async Task Repeated_headers_are_kept_apart_and_lookups_are_case_insensitive()
    {
        var scope = await Rsgi.InfoAsync(Mica, "/info?look=x-rep,x-other,x-absent", "X-Rep: 1", "X-Other: 2", "X-Rep: 3");
        var lookups = scope.GetProperty("lookups");
        foreach (var name in new[] { "x-rep", "X-REP" })
        {
            var rep = lookups.GetProperty(name);
            Assert.Equal("1", rep.Str("get"));                    // the first value
            Assert.Equal("1", rep.Str("get_default"));
            Assert.Equal("1", rep.Str("getitem"));
            Assert.True(rep.Bool("contains"));
            Assert.Equal(["1", "3"], Rsgi.Strings(rep.GetProperty("get_all")));
        }
        Assert.Equal(["2"], Rsgi.Strings(lookups.GetProperty("X-OTHER").GetProperty("get_all")));
        foreach (var name in new[] { "x-absent", "X-ABSENT" })
        {
            var absent = lookups.GetProperty(name);
            Assert.Equal(JsonValueKind.Null, absent.GetProperty("get").ValueKind);
            Assert.Equal("<default>", absent.Str("get_default"));
            Assert.Equal("<KeyError>", absent.Str("getitem"));
            Assert.False(absent.Bool("contains"));
            Assert.Equal(0, absent.GetProperty("get_all").GetArrayLength());
        }

        // items(): one pair per value, a repeated name's values together and in order.
        var items = Rsgi.Pairs(scope.GetProperty("items")).Where(p => p.Name.StartsWith("x-", StringComparison.Ordinal)).ToList();
        Assert.Equal([("x-rep", "1"), ("x-rep", "3"), ("x-other", "2")], items);
        // keys() and iteration: each name once; len(): distinct names; values(): every value.
        var keys = Rsgi.Strings(scope.GetProperty("keys"));
        Assert.Equal(keys.Distinct().Count(), keys.Length);
        Assert.Equal(["x-rep", "x-other"], keys.Where(k => k.StartsWith("x-", StringComparison.Ordinal)));
        Assert.Equal(keys, Rsgi.Strings(scope.GetProperty("iter")));
        Assert.Equal(keys.Length, scope.Int("len"));
        var values = Rsgi.Strings(scope.GetProperty("values"));
        Assert.Equal(Rsgi.Pairs(scope.GetProperty("items")).Select(p => p.Value), values);
        Assert.Equal(keys.Length + 1, values.Length);   // x-rep twice
        // dict(headers) goes through keys() and [] (first value); dict(items()) keeps the last.
        Assert.Equal("1", scope.GetProperty("dict").Str("x-rep"));
        Assert.Equal("3", scope.GetProperty("headers").Str("x-rep"));
        Assert.Equal("localhost", scope.GetProperty("dict").Str("host"));
    }

    [Fact]
    public async Task Header_names_are_lowercase_and_missing_names_are_not_found()
    {
        var scope = await Rsgi.InfoAsync(Mica, "/info?look=X-MiXeD-CaSe", "X-MiXeD-CaSe: Value Kept");
        Assert.Contains("x-mixed-case", Rsgi.Strings(scope.GetProperty("keys")));
        Assert.All(Rsgi.Strings(scope.GetProperty("keys")), k => Assert.Equal(k.ToLowerInvariant(), k));
        Assert.Equal("Value Kept", scope.GetProperty("lookups").GetProperty("X-MiXeD-CaSe").Str("get"));
        Assert.Equal("Value Kept", scope.GetProperty("lookups").GetProperty("X-MIXED-CASE").Str("getitem"));
        var missing = scope.GetProperty("missing");
        Assert.Equal(JsonValueKind.Null, missing.GetProperty("get").ValueKind);
        Assert.Equal("<default>", missing.Str("get_default"));
        Assert.Equal(0, missing.GetProperty("get_all").GetArrayLength());
        Assert.False(missing.Bool("contains"));
    }

    [Fact]
    public async Task Http_1_0_is_version_1()
    {
        var response = await Rsgi.RawAsync(Mica, "GET /info HTTP/1.0\r\n\r\n");
        Assert.Equal(200, response.Status);
        var scope = Json.Parse(response.Body);
        Assert.Equal("1", scope.Str("http_version"));
        Assert.Equal(JsonValueKind.Null, scope.GetProperty("authority").ValueKind);
    }

    [Fact]
    public async Task Path_is_percent_decoded_and_query_string_is_raw()
    {
        var scope = await Rsgi.InfoAsync(Mica, "/info/a%20b%2Fc+d?q=%20x&y=%2F+z");
        Assert.Equal("/info/a b/c+d", scope.Str("path"));
        Assert.Equal("q=%20x&y=%2F+z", scope.Str("query_string"));
    }

    [Fact]
    public async Task Path_bytes_that_are_not_UTF8_become_the_replacement_character()
    {
        var scope = await Rsgi.InfoAsync(Mica, "/info/%FF%C3%A9");
        Assert.Equal("/info/\uFFFDé", scope.Str("path"));
    }

    [Theory]
    [InlineData("/info")]
    [InlineData("/info?")]
    public async Task Query_string_is_empty_without_a_query(string target)
    {
        var scope = await Rsgi.InfoAsync(Mica, target);
        Assert.Equal("", scope.Str("query_string"));
        Assert.Equal("/info", scope.Str("path"));
    }

    [Fact]
    public async Task An_absolute_form_target_gives_the_authority()
    {
        var response = await Rsgi.RawAsync(Mica, "GET http://example.com:8080/info/abs?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, response.Status);
        var scope = Json.Parse(response.Body);
        Assert.Equal("example.com:8080", scope.Str("authority"));
        Assert.Equal("/info/abs", scope.Str("path"));
        Assert.Equal("x=1", scope.Str("query_string"));
    }

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    [InlineData("OPTIONS")]
    [InlineData("PURGE")]
    public async Task Method_is_the_requests(string method)
    {
        var response = await Rsgi.RawAsync(Mica, Rsgi.Request(method, "/info", "Content-Length: 0"));
        Assert.Equal(200, response.Status);
        Assert.Equal(method, Json.Parse(response.Body).Str("method"));
    }

    [Fact]
    public async Task Http2_scope_has_version_2_and_the_authority()
    {
        using var client = Clients.Http2(Server.Base);
        using var response = await client.GetAsync("/info?look=x-probe", HttpCompletionOption.ResponseContentRead);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal(HttpVersion.Version20, response.Version);
        var scope = Json.Parse(text);
        Assert.Equal("2", scope.Str("http_version"));
        Assert.Equal("http", scope.Str("proto"));
        Assert.Equal("http", scope.Str("scheme"));
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("authority"));
        Assert.Equal($"127.0.0.1:{Server.Port}", scope.Str("server"));
        Assert.All(Rsgi.Strings(scope.GetProperty("keys")), k => Assert.False(k.StartsWith(':'), $"pseudo-header {k} among the headers"));
    }

    [Fact]
    public async Task Http2_repeated_headers_are_kept_apart()
    {
        // curl sends each -H as its own header field.
        var result = await Curl.OkAsync("--http2-prior-knowledge", "-H", "X-Rep: 1", "-H", "X-Other: 2", "-H", "X-Rep: 3", Server.Base + "/info?look=x-rep");
        Assert.Equal("2", result.HttpVersion);
        var scope = result.Json;
        Assert.Equal("2", scope.Str("http_version"));
        var rep = scope.GetProperty("lookups").GetProperty("X-REP");
        Assert.Equal("1", rep.Str("get"));
        Assert.Equal(["1", "3"], Rsgi.Strings(rep.GetProperty("get_all")));
        var items = Rsgi.Pairs(scope.GetProperty("items")).Where(p => p.Name.StartsWith("x-", StringComparison.Ordinal)).ToList();
        Assert.Equal([("x-rep", "1"), ("x-rep", "3"), ("x-other", "2")], items);
    }

    [Fact]
    public async Task Mica_rsgi_and_granian_rsgi_provide_the_same_types()
    {
        var response = await Rsgi.RawAsync(Mica, Rsgi.Request("GET", "/imports"));
        Assert.True(response.Status == 200, response.BodyText);
        var imports = Json.Parse(response.Body);
        foreach (var name in imports.GetProperty("same").EnumerateObject())
            Assert.True(name.Value.GetBoolean(), $"granian.rsgi.{name.Name} is not mica.rsgi.{name.Name}");
        Assert.Equal(7, imports.GetProperty("same").EnumerateObject().Count());
        Assert.All(imports.GetProperty("from_import_same").EnumerateArray(), same => Assert.True(same.GetBoolean()));
        Assert.True(imports.Bool("protocol_error_is_runtime_error"));
        Assert.True(imports.Bool("protocol_closed_is_runtime_error"));
        Assert.True(imports.Bool("error_unrelated"));
        var kinds = imports.GetProperty("message_types");
        Assert.Equal((0, 1, 2), (kinds.Int("close"), kinds.Int("bytes"), kinds.Int("string")));
    }
}
