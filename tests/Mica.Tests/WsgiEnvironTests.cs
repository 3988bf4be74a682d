using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Sends a raw request to wsgi_app's /env route and returns the echoed environ.</summary>
internal static class EnvironEcho
{
    public static async Task<(JsonElement Payload, int ClientPort)> EchoAsync(MicaProcess mica, string request)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(request);
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"status {response.Status}: {response.BodyText}\n{mica.Dump(30)}");
        return (Json.Parse(response.Body), connection.LocalEndPoint.Port);
    }

    public static bool Has(this JsonElement environ, string key) => environ.TryGetProperty(key, out _);
}

/// <summary>The PEP 3333 environ, observed by wsgi_app.py /env (served with --url-path-prefix /api).</summary>
public sealed class WsgiEnvironTests(WsgiPrefixServer server) : ServerTests<WsgiPrefixServer>(server)
{
    private Task<(JsonElement Payload, int ClientPort)> EchoAsync(string request) => EnvironEcho.EchoAsync(Mica, request);

    private async Task<JsonElement> EnvironAsync(string target, params string[] headers) =>
        (await EchoAsync(RawConnection.Get(target, headers))).Payload.Environ();

    [Theory]
    [InlineData("GET")]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    [InlineData("PATCH")]
    [InlineData("OPTIONS")]
    [InlineData("PURGE")]
    public async Task Request_method_is_passed_as_sent(string method)
    {
        var (payload, _) = await EchoAsync($"{method} /api/env HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
        Assert.Equal(method, payload.Environ().Str("REQUEST_METHOD"));
    }

    [Fact]
    public async Task Script_name_is_the_prefix_and_path_info_the_rest()
    {
        var environ = await EnvironAsync("/api/env/items/1");
        Assert.Equal(WsgiPrefixServer.Prefix, environ.Str("SCRIPT_NAME"));
        Assert.Equal("/env/items/1", environ.Str("PATH_INFO"));
    }

    [Theory]
    [InlineData("/api/env/caf%C3%A9", "/env/café")]
    [InlineData("/api/env/sp%20ace/%7Euser", "/env/sp ace/~user")]
    [InlineData("/api/env/a%2Fb", "/env/a/b")]
    [InlineData("/api/env/%E2%82%AC/%F0%9F%98%80", "/env/€/😀")]
    public async Task Path_info_is_percent_decoded_as_latin1(string target, string expected)
    {
        var (payload, _) = await EchoAsync(RawConnection.Get(target + "?x=%2F"));
        var pathInfo = payload.Environ().Str("PATH_INFO");
        // PEP 3333: the str holds the decoded bytes one per code point (latin-1).
        var latin1 = System.Text.Encoding.Latin1.GetString(System.Text.Encoding.UTF8.GetBytes(expected));
        Assert.Equal(latin1, pathInfo);
        Assert.Equal(expected, payload.Str("path_info_utf8"));
        Assert.Equal("x=%2F", payload.Environ().Str("QUERY_STRING"));
    }

    [Fact]
    public async Task Query_string_is_raw_and_not_decoded()
    {
        const string query = "a=1&b=%20x&c=%C3%A9&d=hello+world&e&a=2";
        var environ = await EnvironAsync("/api/env/q?" + query);
        Assert.Equal(query, environ.Str("QUERY_STRING"));
        Assert.Equal("/env/q", environ.Str("PATH_INFO"));
    }

    [Fact]
    public async Task Query_string_is_empty_without_a_query()
    {
        var environ = await EnvironAsync("/api/env/q");
        Assert.Equal("", environ.Str("QUERY_STRING"));
    }

    [Fact]
    public async Task Content_type_and_length_are_absent_without_those_headers()
    {
        var environ = await EnvironAsync("/api/env");
        Assert.False(environ.Has("CONTENT_TYPE"), "CONTENT_TYPE present for a GET without Content-Type: " + environ);
        Assert.False(environ.Has("CONTENT_LENGTH"), "CONTENT_LENGTH present for a GET without Content-Length: " + environ);
        Assert.False(environ.Has("HTTP_CONTENT_TYPE"));
        Assert.False(environ.Has("HTTP_CONTENT_LENGTH"));
    }

    [Fact]
    public async Task Content_type_and_length_are_given_without_the_HTTP_prefix()
    {
        var (payload, _) = await EchoAsync("POST /api/env HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhello");
        var environ = payload.Environ();
        Assert.Equal("text/plain; charset=utf-8", environ.Str("CONTENT_TYPE"));
        Assert.Equal("5", environ.Str("CONTENT_LENGTH"));
        Assert.False(environ.Has("HTTP_CONTENT_TYPE"), environ.ToString());
        Assert.False(environ.Has("HTTP_CONTENT_LENGTH"), environ.ToString());
        Assert.Equal("hello", payload.Str("body"));
    }

    [Fact]
    public async Task Chunked_request_has_no_content_length()
    {
        var (payload, _) = await EchoAsync("POST /api/env HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                                           + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        var environ = payload.Environ();
        Assert.False(environ.Has("CONTENT_LENGTH"), environ.ToString());
        Assert.False(environ.Has("HTTP_CONTENT_LENGTH"), environ.ToString());
        Assert.Equal("application/octet-stream", environ.Str("CONTENT_TYPE"));
        Assert.Equal("hello world", payload.Str("body"));
    }

    [Fact]
    public async Task Server_name_and_port_are_the_local_socket_as_str()
    {
        var (payload, _) = await EchoAsync(RawConnection.Get("/api/env"));
        Assert.Equal("127.0.0.1", payload.Environ().Str("SERVER_NAME"));
        Assert.Equal(Mica.Port.ToString(), payload.Environ().Str("SERVER_PORT"));
        Assert.Equal("str", payload.GetProperty("types").Str("SERVER_PORT"));
    }

    [Fact]
    public async Task Remote_addr_and_port_are_the_peer_as_str()
    {
        var (payload, clientPort) = await EchoAsync(RawConnection.Get("/api/env"));
        Assert.Equal("127.0.0.1", payload.Environ().Str("REMOTE_ADDR"));
        Assert.Equal(clientPort.ToString(), payload.Environ().Str("REMOTE_PORT"));
        Assert.Equal("str", payload.GetProperty("types").Str("REMOTE_PORT"));
    }

    [Fact]
    public async Task Server_protocol_is_HTTP_1_1()
    {
        var environ = await EnvironAsync("/api/env");
        Assert.Equal("HTTP/1.1", environ.Str("SERVER_PROTOCOL"));
    }

    [Fact]
    public async Task Server_protocol_is_HTTP_1_0_for_a_1_0_request()
    {
        var (payload, _) = await EchoAsync("GET /api/env HTTP/1.0\r\nHost: localhost\r\n\r\n");
        Assert.Equal("HTTP/1.0", payload.Environ().Str("SERVER_PROTOCOL"));
    }

    [Fact]
    public async Task Headers_become_HTTP_variables_and_repeats_are_joined_with_commas()
    {
        var environ = await EnvironAsync("/api/env",
            "X-MiXeD-Case: Keep The Value Case", "X-Dup: first", "X-Other: o", "X-Dup: second", "X-Dup: third", "User-Agent: wsgi-test/1");
        Assert.Equal("Keep The Value Case", environ.Str("HTTP_X_MIXED_CASE"));
        Assert.Equal("first,second,third", environ.Str("HTTP_X_DUP"));
        Assert.Equal("o", environ.Str("HTTP_X_OTHER"));
        Assert.Equal("localhost", environ.Str("HTTP_HOST"));
        Assert.Equal("wsgi-test/1", environ.Str("HTTP_USER_AGENT"));
    }

    [Fact]
    public async Task Headers_with_an_underscore_are_dropped()
    {
        var environ = await EnvironAsync("/api/env", "X-Forwarded-For: 1.2.3.4", "X_Forwarded_For: 6.6.6.6", "X_Only_Underscore: u");
        Assert.Equal("1.2.3.4", environ.Str("HTTP_X_FORWARDED_FOR"));
        Assert.False(environ.Has("HTTP_X_ONLY_UNDERSCORE"), "a header with '_' in its name reached the environ: " + environ);
        Assert.DoesNotContain(environ.EnumerateObject(), p => p.Value.ValueKind == JsonValueKind.String && p.Value.GetString()!.Contains("6.6.6.6"));
    }

    [Fact]
    public async Task Underscore_header_alone_does_not_spoof_X_Forwarded_For()
    {
        var environ = await EnvironAsync("/api/env", "X_Forwarded_For: 6.6.6.6");
        Assert.False(environ.Has("HTTP_X_FORWARDED_FOR"), "X_Forwarded_For became HTTP_X_FORWARDED_FOR: " + environ);
    }

    [Fact]
    public async Task Cgi_variables_are_native_strings()
    {
        var (payload, _) = await EchoAsync(RawConnection.Get("/api/env?a=1", "X-A: 1"));
        var types = payload.GetProperty("types");
        foreach (var key in new[] { "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "HTTP_X_A", "HTTP_HOST" })
            Assert.True(types.TryGetProperty(key, out var type) && type.GetString() == "str", $"{key}: {(types.TryGetProperty(key, out var t) ? t.GetString() : "missing")}");
        foreach (var p in types.EnumerateObject().Where(p => !p.Name.Contains('.')))
            Assert.True(p.Value.GetString() == "str", $"{p.Name} is a {p.Value.GetString()}, not a str");
    }

    [Fact]
    public async Task Wsgi_variables_have_the_pep_3333_values()
    {
        var (payload, _) = await EchoAsync(RawConnection.Get("/api/env"));
        var environ = payload.Environ();
        var types = payload.GetProperty("types");
        Assert.Equal([1, 0], environ.GetProperty("wsgi.version").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal("tuple", types.Str("wsgi.version"));
        Assert.Equal("http", environ.Str("wsgi.url_scheme"));
        Assert.True(environ.Bool("wsgi.multithread"));
        Assert.False(environ.Bool("wsgi.multiprocess"), "one worker: wsgi.multiprocess must be False");
        Assert.False(environ.Bool("wsgi.run_once"));
        Assert.True(environ.Bool("wsgi.input_terminated"));
        Assert.Equal("bool", types.Str("wsgi.multithread"));
        Assert.True(payload.Bool("input_methods"), "wsgi.input lacks read/readline/readlines/__iter__");
        Assert.True(payload.Bool("errors_methods"), "wsgi.errors lacks write/writelines/flush");
        Assert.True(payload.Bool("file_wrapper_callable"), "no callable wsgi.file_wrapper");
    }

    [Fact]
    public async Task Concurrent_requests_each_see_their_own_environ()
    {
        using var client = Wsgi.ParallelClient(Mica, 30);
        var results = await Task.WhenAll(Enumerable.Range(0, 30).Select(async i =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/env/n{i}?i={i}&sleep=0.1") { Content = new StringContent($"body-{i}") };
            request.Headers.Add("X-Index", i.ToString());
            using var response = await client.SendAsync(request);
            return (i, Payload: Json.Parse(await response.Content.ReadAsStringAsync()));
        }));
        foreach (var (i, payload) in results)
        {
            var environ = payload.Environ();
            Assert.Equal($"/env/n{i}", environ.Str("PATH_INFO"));
            Assert.Equal($"i={i}&sleep=0.1", environ.Str("QUERY_STRING"));
            Assert.Equal(i.ToString(), environ.Str("HTTP_X_INDEX"));
            Assert.Equal($"body-{i}", payload.Str("body"));
            Assert.Equal($"body-{i}".Length.ToString(), environ.Str("CONTENT_LENGTH"));
        }
    }

    [Fact]
    public async Task Process_environment_is_not_copied_into_the_environ()
    {
        var environ = await EnvironAsync("/api/env");
        Assert.False(environ.Has("PATH"), "PATH from os.environ is in the WSGI environ");
        Assert.False(environ.Has("HOME"), "HOME from os.environ is in the WSGI environ");
    }

    [Fact]
    public async Task Wsgi_errors_writes_reach_the_servers_stderr()
    {
        var key = Keys.New();
        var mark = Mica.Mark();
        using (var response = await Client.GetAsync($"/api/wsgi-errors?key={key}"))
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        await Mica.WaitForStderrAsync($"wsgi-errors-write {key}", after: mark);
        await Mica.WaitForStderrAsync($"wsgi-errors-writelines {key}", after: mark);
    }
}

/// <summary>The environ parts that need another server: no prefix, several workers, a secret in mica's environment.</summary>
public sealed class WsgiEnvironServerTests(WsgiServer server) : ServerTests<WsgiServer>(server)
{
    [Fact]
    public async Task Without_a_prefix_script_name_is_empty_and_path_info_the_whole_path()
    {
        var (payload, _) = await EnvironEcho.EchoAsync(Mica, RawConnection.Get("/env/items/1"));
        Assert.Equal("", payload.Environ().Str("SCRIPT_NAME"));
        Assert.Equal("/env/items/1", payload.Environ().Str("PATH_INFO"));
    }

    [Fact]
    public async Task Interface_wsgi_is_logged()
    {
        await Mica.WaitForStderrAsync("interface wsgi");
    }

    [Fact]
    public async Task Multiprocess_is_true_with_two_workers()
    {
        await using var mica = await Master.StartAsync(2, ["--interface", "wsgi"], Wsgi.App);
        var (payload, _) = await EnvironEcho.EchoAsync(mica, RawConnection.Get("/env"));
        Assert.True(payload.Environ().Bool("wsgi.multiprocess"), "--workers 2: wsgi.multiprocess must be True");
        Assert.True(payload.Environ().Bool("wsgi.multithread"));
    }

    [Fact]
    public async Task Variables_from_micas_environment_are_not_in_the_environ()
    {
        await using var mica = await MicaProcess.StartAsync(Wsgi.App, ["--interface", "wsgi"],
            new Dictionary<string, string?> { ["MICA_TEST_SECRET"] = "xyz-secret-1", ["WSGI_TEST_SECRET"] = "xyz-secret-2" });
        var (payload, _) = await EnvironEcho.EchoAsync(mica, RawConnection.Get("/env"));
        var environ = payload.Environ();
        Assert.False(environ.Has("MICA_TEST_SECRET"), environ.ToString());
        Assert.False(environ.Has("WSGI_TEST_SECRET"), environ.ToString());
        Assert.False(environ.Has("PATH"));
        Assert.False(environ.Has("HOME"));
        Assert.DoesNotContain(environ.EnumerateObject(), p => p.Value.ToString().Contains("xyz-secret", StringComparison.Ordinal));
    }
}

/// <summary>--interface auto picks WSGI for a plain callable taking two arguments.</summary>
public sealed class WsgiAutoDetectTests
{
    [Fact]
    public async Task Plain_two_argument_callable_is_served_as_wsgi()
    {
        await using var mica = await MicaProcess.StartAsync(Wsgi.App);
        await mica.WaitForStderrAsync("interface wsgi");
        var (payload, _) = await EnvironEcho.EchoAsync(mica, RawConnection.Get("/env/auto"));
        Assert.Equal("/env/auto", payload.Environ().Str("PATH_INFO"));
        Assert.Equal("http", payload.Environ().Str("wsgi.url_scheme"));
    }
}
