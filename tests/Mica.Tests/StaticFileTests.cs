using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// --static-path-*: files served by Kestrel without entering Python, with static_app.py behind
/// (it answers "APP METHOD path" to everything and lists what it saw at /seen). Two mounts:
/// /static → public, /assets → assets (<see cref="StaticSite"/>), default --static-path-expires.
/// </summary>
public sealed class StaticFileTests(StaticAsgiServer server) : ServerTests<StaticAsgiServer>(server)
{
    private StaticSite Site => Server.Site;

    private static async Task<RawResponse> RawAsync(MicaProcess mica, string request, string method = "GET")
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(request);
        return await connection.ReadResponseAsync(method);
    }

    private async Task AssertAppNeverSawAsync(string key)
    {
        var seen = await StaticSite.SeenAsync(Client);
        Assert.DoesNotContain(seen, s => s.Contains(key, StringComparison.Ordinal));
    }

    /// <summary>The app's own answer (it was reached), not a file.</summary>
    private static void AssertAppAnswered(HttpResponseMessage response, string body, string method, string path)
    {
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        Assert.Equal($"APP {method} {path}", body);
    }

    // ------------------------------------------------------------------ content

    [Theory]
    [InlineData("style.css", "text/css")]
    [InlineData("app.js", "javascript")]
    [InlineData("page.html", "text/html")]
    [InlineData("data.json", "application/json")]
    [InlineData("image.png", "image/png")]
    [InlineData("blob.qqunknown", "application/octet-stream")]
    [InlineData("noextension", "application/octet-stream")]
    public async Task Content_type_follows_the_extension_and_the_bytes_are_the_file(string name, string type)
    {
        using var response = await Client.GetAsync($"/static/{name}");
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {Encoding.UTF8.GetString(body)}");
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (type == "javascript") Assert.Matches("^(text|application)/javascript$", mediaType);
        else Assert.Equal(type, mediaType);
        Assert.Equal(File.ReadAllBytes(Path.Combine(Site.Public, name)), body);
        Assert.Equal(body.Length, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task A_1_MiB_file_is_served_byte_for_byte_with_its_length()
    {
        using var response = await Client.GetAsync("/static/big.bin");
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1024 * 1024, response.Content.Headers.ContentLength);
        Assert.Equal(StaticSite.Sha256(Site.Big), StaticSite.Sha256(body));
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task ETag_Last_Modified_and_the_default_Cache_Control_are_sent()
    {
        using var response = await Client.GetAsync("/static/style.css");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotNull(response.Headers.ETag);
        Assert.False(string.IsNullOrEmpty(response.Headers.ETag!.Tag));
        var lastModified = response.Content.Headers.LastModified;
        Assert.NotNull(lastModified);
        var mtime = File.GetLastWriteTimeUtc(Path.Combine(Site.Public, "style.css"));
        Assert.True(Math.Abs((lastModified!.Value.UtcDateTime - mtime).TotalSeconds) < 2, $"Last-Modified {lastModified:R}, file mtime {mtime:R}");
        Assert.Equal("max-age=86400", Assert.Single(response.Headers.GetValues("Cache-Control")));
    }

    [Fact]
    public async Task A_file_name_with_percent_encoded_UTF_8_and_a_space_is_served()
    {
        using var response = await Client.GetAsync("/static/caf%C3%A9%20menu.txt");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(StaticSite.Unicode, await response.Content.ReadAsStringAsync());
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
    }

    // ------------------------------------------------------------------ never entering Python

    [Fact]
    public async Task Static_requests_never_reach_the_app_while_other_paths_do()
    {
        var key = Keys.New();
        using (var file = await Client.GetAsync($"/static/style.css?k={key}"))
        {
            Assert.Equal(HttpStatusCode.OK, file.StatusCode);
            Assert.Equal(StaticSite.Css, await file.Content.ReadAsStringAsync());
        }
        using (var head = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/static/big.bin?k={key}")))
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        using (var range = new HttpRequestMessage(HttpMethod.Get, $"/static/big.bin?k={key}"))
        {
            range.Headers.Range = new RangeHeaderValue(0, 9);
            using var partial = await Client.SendAsync(range);
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
        }
        using (var other = await Client.GetAsync($"/assets/only-assets.txt?k={key}"))
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);

        // The control: the same key on a path outside the routes does reach the app, and /seen shows it.
        var control = Keys.New();
        using (var app = await Client.GetAsync($"/elsewhere?k={control}"))
            AssertAppAnswered(app, await app.Content.ReadAsStringAsync(), "GET", "/elsewhere");
        var seen = await StaticSite.SeenAsync(Client);
        Assert.Contains($"GET /elsewhere?k={control}", seen);
        Assert.DoesNotContain(seen, s => s.Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_file_under_the_route_is_404_and_the_app_never_sees_it()
    {
        var key = Keys.New();
        foreach (var target in new[] { $"/static/missing-{key}.txt", $"/static/nodir-{key}/x.css", $"/assets/missing-{key}.txt", $"/static/style.css/{key}" })
        {
            using var response = await Client.GetAsync(target);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{target}: {(int)response.StatusCode} {body}");
            Assert.DoesNotContain("APP", body);
        }
        await AssertAppNeverSawAsync(key);
    }

    [Fact]
    public async Task A_directory_without_dir_to_file_is_404_and_never_a_listing()
    {
        var key = Keys.New();
        foreach (var target in new[] { "/static/sub/", "/static/sub", "/static/", "/static", "/static/noindex/", "/assets/" })
        {
            using var response = await Client.GetAsync($"{target}?k={key}");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{target}: {(int)response.StatusCode} {body}");
            Assert.DoesNotContain("index.html", body);
            Assert.DoesNotContain("other.txt", body);
            Assert.DoesNotContain("APP", body);
        }
        await AssertAppNeverSawAsync(key);
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/hello")]
    [InlineData("/staticx/style.css")]
    [InlineData("/static-other/style.css")]
    [InlineData("/assetsstyle.css")]
    [InlineData("/public/style.css")]
    public async Task Paths_outside_the_routes_go_to_the_app(string path)
    {
        using var response = await Client.GetAsync(path);
        AssertAppAnswered(response, await response.Content.ReadAsStringAsync(), "GET", path);
    }

    /// <summary>URL paths are case-sensitive (RFC 3986 §6.2.2.1): /STATIC is not the route /static
    /// (Granian matches the route with a case-sensitive prefix), so the app gets it.</summary>
    [Theory]
    [InlineData("/STATIC/style.css")]
    [InlineData("/Static/style.css")]
    [InlineData("/ASSETS/same.txt")]
    public async Task Route_matching_is_case_sensitive(string path)
    {
        using var response = await Client.GetAsync(path);
        AssertAppAnswered(response, await response.Content.ReadAsStringAsync(), "GET", path);
    }

    [Fact]
    public async Task A_file_written_after_the_start_is_served_and_a_rewrite_changes_its_ETag()
    {
        var name = $"late-{Keys.New()}.txt";
        var path = Path.Combine(Site.Public, name);
        using (var before = await Client.GetAsync($"/static/{name}"))
            Assert.Equal(HttpStatusCode.NotFound, before.StatusCode);
        File.WriteAllText(path, "first version");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddHours(-2));
        using var first = await Client.GetAsync($"/static/{name}");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("first version", await first.Content.ReadAsStringAsync());

        File.WriteAllText(path, "second version, longer");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddHours(-1));
        using var second = await Client.GetAsync($"/static/{name}");
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("second version, longer", await second.Content.ReadAsStringAsync());
        Assert.NotEqual(first.Headers.ETag, second.Headers.ETag);
        Assert.True(second.Content.Headers.LastModified > first.Content.Headers.LastModified);

        // The old ETag no longer matches: the new content, not a 304.
        using var conditional = new HttpRequestMessage(HttpMethod.Get, $"/static/{name}");
        conditional.Headers.IfNoneMatch.Add(first.Headers.ETag!);
        using var third = await Client.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.OK, third.StatusCode);
        Assert.Equal("second version, longer", await third.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Two_mounts_each_serve_their_own_directory()
    {
        Assert.Equal("same.txt from public", await Client.GetStringAsync("/static/same.txt"));
        Assert.Equal("same.txt from assets", await Client.GetStringAsync("/assets/same.txt"));
        Assert.Equal("only in assets", await Client.GetStringAsync("/assets/only-assets.txt"));
        using (var notInPublic = await Client.GetAsync("/static/only-assets.txt"))
            Assert.Equal(HttpStatusCode.NotFound, notInPublic.StatusCode);
        using (var notInAssets = await Client.GetAsync("/assets/style.css"))
            Assert.Equal(HttpStatusCode.NotFound, notInAssets.StatusCode);
    }

    // ------------------------------------------------------------------ conditional requests, ranges, HEAD

    [Fact]
    public async Task If_None_Match_with_the_ETag_is_304_without_a_body()
    {
        using var first = await Client.GetAsync("/static/style.css");
        var etag = first.Headers.ETag?.ToString();
        Assert.False(string.IsNullOrEmpty(etag), "no ETag");

        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/static/style.css", $"If-None-Match: {etag}"));
        var notModified = await connection.ReadResponseAsync();
        Assert.Equal(304, notModified.Status);
        Assert.Empty(notModified.Body);
        Assert.Null(notModified.Header("transfer-encoding"));
        // Had any body byte been sent after the 304, the next response on the connection would not parse.
        await connection.SendAsync(RawConnection.Get("/static/same.txt"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal(200, next.Status);
        Assert.Equal("same.txt from public", next.BodyText);

        // Another ETag: the file is sent.
        await connection.SendAsync(RawConnection.Get("/static/style.css", "If-None-Match: \"not-the-etag\""));
        var changed = await connection.ReadResponseAsync();
        Assert.Equal(200, changed.Status);
        Assert.Equal(StaticSite.Css, changed.BodyText);
    }

    [Fact]
    public async Task If_Modified_Since_equal_to_Last_Modified_is_304()
    {
        using var first = await Client.GetAsync("/static/style.css");
        var lastModified = first.Content.Headers.LastModified;
        Assert.NotNull(lastModified);

        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/static/style.css", $"If-Modified-Since: {lastModified!.Value:R}"));
        var notModified = await connection.ReadResponseAsync();
        Assert.Equal(304, notModified.Status);
        Assert.Empty(notModified.Body);

        // Modified since an older date: the file is sent.
        await connection.SendAsync(RawConnection.Get("/static/style.css", $"If-Modified-Since: {lastModified.Value.AddDays(-1):R}"));
        var modified = await connection.ReadResponseAsync();
        Assert.Equal(200, modified.Status);
        Assert.Equal(StaticSite.Css, modified.BodyText);
    }

    [Fact]
    public async Task Range_0_99_is_206_with_Content_Range_and_the_first_100_bytes()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/static/big.bin");
        request.Headers.Range = new RangeHeaderValue(0, 99);
        using var response = await Client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal("bytes 0-99/1048576", response.Content.Headers.ContentRange?.ToString());
        Assert.Equal(100, response.Content.Headers.ContentLength);
        Assert.Equal(Site.Big[..100], body);
    }

    [Fact]
    public async Task A_suffix_range_gives_the_last_bytes()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/static/big.bin");
        request.Headers.Range = new RangeHeaderValue(null, 10);
        using var response = await Client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.PartialContent, response.StatusCode);
        Assert.Equal("bytes 1048566-1048575/1048576", response.Content.Headers.ContentRange?.ToString());
        Assert.Equal(Site.Big[^10..], body);
    }

    [Fact]
    public async Task A_middle_range_over_raw_HTTP_1_1_is_exact()
    {
        var response = await RawAsync(Mica, RawConnection.Get("/static/big.bin", "Range: bytes=524288-524387"));
        Assert.Equal(206, response.Status);
        Assert.Equal("bytes 524288-524387/1048576", response.Header("content-range"));
        Assert.Equal("100", response.Header("content-length"));
        Assert.Equal(Site.Big[524288..524388], response.Body);
    }

    [Fact]
    public async Task An_unsatisfiable_range_is_416()
    {
        var response = await RawAsync(Mica, RawConnection.Get("/static/big.bin", "Range: bytes=2000000-2000100"));
        Assert.Equal(416, response.Status);
        Assert.Equal("bytes */1048576", response.Header("content-range"));
        Assert.True(response.Body.Length < 1024, $"a {response.Body.Length}-byte body with the 416");
    }

    [Fact]
    public async Task HEAD_gives_the_headers_and_no_body()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("HEAD /static/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal("1048576", head.Header("content-length"));
        Assert.Equal("application/octet-stream", head.Header("content-type"));
        Assert.NotNull(head.Header("etag"));
        Assert.NotNull(head.Header("last-modified"));
        Assert.Equal("max-age=86400", head.Header("cache-control"));
        // Had any of the 1 MiB been sent, the next response on the connection would not parse.
        await connection.SendAsync(RawConnection.Get("/static/same.txt"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal(200, next.Status);
        Assert.Equal("same.txt from public", next.BodyText);
    }

    // ------------------------------------------------------------------ other methods

    [Theory]
    [InlineData("POST")]
    [InlineData("PUT")]
    [InlineData("DELETE")]
    public async Task Other_methods_on_a_static_file_do_not_get_the_file(string method)
    {
        var key = Keys.New();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"{method} /static/style.css?k={key} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
        var response = await connection.ReadResponseAsync(method);
        Assert.True(response.Status is >= 400 and < 500, $"{method}: {response.Status} {response.BodyText}");
        Assert.DoesNotContain("#123456", response.BodyText);
        // The body was consumed, not taken for the next request: the connection still works.
        await connection.SendAsync(RawConnection.Get("/static/style.css"));
        var next = await connection.ReadResponseAsync();
        Assert.Equal(200, next.Status);
        Assert.Equal(StaticSite.Css, next.BodyText);
    }

    // ------------------------------------------------------------------ staying inside the mount

    /// <summary>A response to a request that tried to leave the mount: never the secret; a 400 or
    /// 404, or the app's own answer (where the app was given the request is checked apart, in
    /// <see cref="A_dot_segment_path_under_a_route_is_never_handed_to_the_app_as_a_route_path"/>).</summary>
    private void AssertNotLeaked(string target, int status, byte[] body)
    {
        var text = Encoding.Latin1.GetString(body);
        Assert.DoesNotContain(Site.Secret, text);
        Assert.True(status is 400 or 404 || (status == 200 && text.StartsWith("APP ", StringComparison.Ordinal)), $"{target}: {status} {text}");
    }

    /// <summary>
    /// A request whose raw path is under a route but whose dot segments lead out of it: either the
    /// static side answers it (a 404, as Granian does: it resolves ROUTE's remainder inside the mount
    /// and refuses what lands outside), or the app gets it with the normalised path, outside the route.
    /// Never the app given a path under the route that the static side declined: the routing
    /// decision and the path the app sees must agree.
    /// </summary>
    [Fact]
    public async Task A_dot_segment_path_under_a_route_is_never_handed_to_the_app_as_a_route_path()
    {
        var wrong = new List<string>();
        foreach (var target in new[] { "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/sub/../../secret.txt", "/static/./../secret.txt", "/assets/../secret.txt" })
        {
            var response = await RawAsync(Mica, RawConnection.Get(target));
            AssertNotLeaked(target, response.Status, response.Body);
            if (response.Status == 200 && (response.BodyText.StartsWith("APP GET /static/", StringComparison.Ordinal) || response.BodyText.StartsWith("APP GET /assets/", StringComparison.Ordinal)))
                wrong.Add($"{target} -> {response.Status} \"{response.BodyText}\"");
        }
        Assert.True(wrong.Count == 0, "expected a 404 (or the app given the normalised path /secret.txt), "
            + "but the app was handed a path under the route:\n  " + string.Join("\n  ", wrong));
    }

    [Theory]
    [InlineData("/static/../secret.txt")]
    [InlineData("/static/%2e%2e/secret.txt")]
    [InlineData("/static/%2E%2E/secret.txt")]
    [InlineData("/static/..%2fsecret.txt")]
    [InlineData("/static/..%2Fsecret.txt")]
    [InlineData("/static/%2e%2e%2fsecret.txt")]
    [InlineData("/static/..%5csecret.txt")]
    [InlineData("/static/..\\secret.txt")]
    [InlineData("/static/sub/../../secret.txt")]
    [InlineData("/static/sub/%2e%2e/%2e%2e/secret.txt")]
    [InlineData("/static/sub/..%2f..%2fsecret.txt")]
    [InlineData("/static/%252e%252e/secret.txt")]
    [InlineData("/static/./../secret.txt")]
    [InlineData("/static/../public/../secret.txt")]
    [InlineData("/assets/../secret.txt")]
    [InlineData("/assets/..%2fsecret.txt")]
    [InlineData("/static//{root}/secret.txt")]
    [InlineData("/static/%2f{root}/secret.txt")]
    [InlineData("/static/..%00/secret.txt")]
    public async Task Traversal_out_of_the_mount_never_serves_the_outside_file(string target)
    {
        target = target.Replace("{root}", Site.Root.TrimStart('/'), StringComparison.Ordinal);
        var response = await RawAsync(Mica, RawConnection.Get(target));
        AssertNotLeaked(target, response.Status, response.Body);
    }

    [Theory]
    [InlineData("/static/../secret.txt")]
    [InlineData("/static/%2e%2e/secret.txt")]
    [InlineData("/static/..%2fsecret.txt")]
    [InlineData("/static/sub/../../secret.txt")]
    public async Task Traversal_with_curl_path_as_is_never_serves_the_outside_file(string target)
    {
        var result = await StaticSite.CurlAsync($"http://{Mica.Host}:{Mica.Port}{target}", "--path-as-is");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain(Site.Secret, result.Head);
        AssertNotLeaked(target, result.Status, result.Body);
    }

    [Theory]
    [InlineData("/static/link-out.txt")]
    [InlineData("/static/dir-out/secret.txt")]
    [InlineData("/static/dir-out/index.html")]
    [InlineData("/static/dir-out/")]
    public async Task A_symlink_out_of_the_mount_is_404_and_never_followed(string target)
    {
        var key = Keys.New();
        var response = await RawAsync(Mica, RawConnection.Get($"{target}?k={key}"));
        Assert.DoesNotContain(Site.Secret, response.BodyText);
        Assert.True(response.Status == 404, $"{target}: {response.Status} {response.BodyText}");
        await AssertAppNeverSawAsync(key);
    }

    // ------------------------------------------------------------------ HTTP/2

    [Fact]
    public async Task HTTP2_serves_the_1_MiB_file_byte_for_byte()
    {
        using var h2 = StaticSite.CreateHttp2Client(Mica);
        using var response = await h2.GetAsync("/static/big.bin");
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1024 * 1024, response.Content.Headers.ContentLength);
        Assert.Equal(StaticSite.Sha256(Site.Big), StaticSite.Sha256(body));
        Assert.NotNull(response.Headers.ETag);
        Assert.NotNull(response.Content.Headers.LastModified);
        Assert.Equal("max-age=86400", Assert.Single(response.Headers.GetValues("Cache-Control")));
    }

    [Fact]
    public async Task HTTP2_content_types_conditional_requests_ranges_HEAD_and_404()
    {
        var key = Keys.New();
        using var h2 = StaticSite.CreateHttp2Client(Mica);

        using var css = await h2.GetAsync($"/static/style.css?k={key}");
        Assert.Equal(HttpVersion.Version20, css.Version);
        Assert.Equal(HttpStatusCode.OK, css.StatusCode);
        Assert.Equal("text/css", css.Content.Headers.ContentType?.MediaType);
        Assert.Equal(StaticSite.Css, await css.Content.ReadAsStringAsync());

        using (var conditional = new HttpRequestMessage(HttpMethod.Get, $"/static/style.css?k={key}"))
        {
            conditional.Headers.IfNoneMatch.Add(css.Headers.ETag!);
            using var notModified = await h2.SendAsync(conditional);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
            Assert.Empty(await notModified.Content.ReadAsByteArrayAsync());
        }
        using (var range = new HttpRequestMessage(HttpMethod.Get, $"/static/big.bin?k={key}"))
        {
            range.Headers.Range = new RangeHeaderValue(0, 99);
            using var partial = await h2.SendAsync(range);
            Assert.Equal(HttpStatusCode.PartialContent, partial.StatusCode);
            Assert.Equal("bytes 0-99/1048576", partial.Content.Headers.ContentRange?.ToString());
            Assert.Equal(Site.Big[..100], await partial.Content.ReadAsByteArrayAsync());
        }
        using (var head = await h2.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/static/big.bin?k={key}")))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(1024 * 1024, head.Content.Headers.ContentLength);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
        using (var missing = await h2.GetAsync($"/static/missing-{key}.txt"))
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using (var traversal = await h2.GetAsync("/static/%2e%2e/secret.txt"))   // HttpClient sends /secret.txt
            Assert.DoesNotContain(Site.Secret, await traversal.Content.ReadAsStringAsync());
        using (var link = await h2.GetAsync($"/static/link-out.txt?k={key}"))
        {
            Assert.Equal(HttpStatusCode.NotFound, link.StatusCode);
            Assert.DoesNotContain(Site.Secret, await link.Content.ReadAsStringAsync());
        }
        using (var app = await h2.GetAsync("/h2-app"))
        {
            Assert.Equal(HttpVersion.Version20, app.Version);
            AssertAppAnswered(app, await app.Content.ReadAsStringAsync(), "GET", "/h2-app");
        }
        await AssertAppNeverSawAsync(key);
    }

    [Fact]
    public async Task Concurrent_downloads_over_HTTP1_and_HTTP2_are_all_exact()
    {
        using var h2 = StaticSite.CreateHttp2Client(Mica);
        using var h1 = Mica.CreateClient();
        var expected = StaticSite.Sha256(Site.Big);
        var downloads = Enumerable.Range(0, 16).Select(async i =>
        {
            var client = i % 2 == 0 ? h1 : h2;
            using var response = await client.GetAsync("/static/big.bin");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return StaticSite.Sha256(await response.Content.ReadAsByteArrayAsync());
        });
        Assert.All(await Task.WhenAll(downloads), sha => Assert.Equal(expected, sha));
    }
}

/// <summary>One mount without a route (so /static), --static-path-dir-to-file index.html, --static-path-expires 0.</summary>
public sealed class IndexStaticFileTests(StaticIndexServer server) : ServerTests<StaticIndexServer>(server)
{
    private StaticSite Site => Server.Site;

    [Theory]
    [InlineData("/static/sub/", StaticSite.SubIndex)]
    [InlineData("/static/sub", StaticSite.SubIndex)]
    [InlineData("/static/", StaticSite.RootIndex)]
    [InlineData("/static", StaticSite.RootIndex)]
    public async Task A_directory_serves_its_index_file_as_html(string target, string expected)
    {
        var key = Keys.New();
        using var response = await Client.GetAsync($"{target}?k={key}");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{target}: {(int)response.StatusCode} {body}");
        Assert.Equal(expected, body);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var seen = await StaticSite.SeenAsync(Client);
        Assert.DoesNotContain(seen, s => s.Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_directory_without_the_index_file_is_404()
    {
        var key = Keys.New();
        foreach (var target in new[] { "/static/noindex/", "/static/noindex" })
        {
            using var response = await Client.GetAsync($"{target}?k={key}");
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{target}: {(int)response.StatusCode} {body}");
            Assert.DoesNotContain("file.txt", body);
        }
        var seen = await StaticSite.SeenAsync(Client);
        Assert.DoesNotContain(seen, s => s.Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_symlinked_directory_out_of_the_mount_does_not_serve_its_index()
    {
        foreach (var target in new[] { "/static/dir-out/", "/static/dir-out", "/static/dir-out/index.html" })
        {
            using var response = await Client.GetAsync(target);
            var body = await response.Content.ReadAsStringAsync();
            Assert.DoesNotContain(Site.Secret, body);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{target}: {(int)response.StatusCode} {body}");
        }
    }

    [Fact]
    public async Task A_single_mount_without_a_route_is_served_at_static()
    {
        Assert.Equal(StaticSite.Css, await Client.GetStringAsync("/static/style.css"));
        Assert.Equal("other", await Client.GetStringAsync("/static/sub/other.txt"));
        using var elsewhere = await Client.GetAsync("/files/style.css");
        Assert.Equal("APP GET /files/style.css", await elsewhere.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Expires_0_sends_no_Cache_Control_but_keeps_the_validators()
    {
        using var response = await Client.GetAsync("/static/style.css");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(response.Headers.Contains("Cache-Control"), $"Cache-Control: {response.Headers.CacheControl}");
        Assert.NotNull(response.Headers.ETag);
        Assert.NotNull(response.Content.Headers.LastModified);
    }

    [Fact]
    public async Task Traversal_with_dir_to_file_never_serves_an_outside_index()
    {
        foreach (var target in new[] { "/static/../", "/static/%2e%2e/", "/static/..%2f", "/static/sub/../../" })
        {
            var result = await StaticSite.CurlAsync($"http://{Mica.Host}:{Mica.Port}{target}", "--path-as-is");
            Assert.True(result.ExitCode == 0, result.ToString());
            Assert.DoesNotContain(Site.Secret, result.BodyText);
            Assert.True(result.Status is 400 or 404 || result.BodyText.StartsWith("APP GET /", StringComparison.Ordinal), $"{target}: {result}");
        }
    }
}

/// <summary>A WSGI app (--interface wsgi) behind one mount on /files, --static-path-expires 60.</summary>
public sealed class WsgiStaticFileTests(StaticWsgiServer server) : ServerTests<StaticWsgiServer>(server)
{
    private StaticSite Site => Server.Site;

    private async Task AssertAppNeverSawAsync(string key)
    {
        var seen = await StaticSite.SeenAsync(Client);
        Assert.DoesNotContain(seen, s => s.Contains(key, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Files_are_served_without_entering_the_WSGI_app()
    {
        var key = Keys.New();
        using (var css = await Client.GetAsync($"/files/style.css?k={key}"))
        {
            Assert.Equal(HttpStatusCode.OK, css.StatusCode);
            Assert.Equal("text/css", css.Content.Headers.ContentType?.MediaType);
            Assert.Equal(StaticSite.Css, await css.Content.ReadAsStringAsync());
            Assert.Equal("max-age=60", Assert.Single(css.Headers.GetValues("Cache-Control")));
            Assert.NotNull(css.Headers.ETag);
            Assert.NotNull(css.Content.Headers.LastModified);
        }
        using (var big = await Client.GetAsync($"/files/big.bin?k={key}"))
        {
            Assert.Equal(HttpStatusCode.OK, big.StatusCode);
            Assert.Equal(StaticSite.Sha256(Site.Big), StaticSite.Sha256(await big.Content.ReadAsByteArrayAsync()));
        }
        using (var missing = await Client.GetAsync($"/files/missing-{key}.txt"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            Assert.DoesNotContain("APP", await missing.Content.ReadAsStringAsync());
        }
        using (var directory = await Client.GetAsync($"/files/sub/?k={key}"))
            Assert.Equal(HttpStatusCode.NotFound, directory.StatusCode);
        using (var app = await Client.GetAsync($"/static/style.css?k=control-{key}"))
        {
            Assert.Equal(HttpStatusCode.OK, app.StatusCode);
            Assert.Equal("WSGI APP GET /static/style.css", await app.Content.ReadAsStringAsync());
        }
        var seen = await StaticSite.SeenAsync(Client);
        Assert.Contains($"GET /static/style.css?k=control-{key}", seen);
        Assert.Equal(1, seen.Count(s => s.Contains(key, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Conditional_range_and_HEAD_requests_work_in_front_of_WSGI()
    {
        using var first = await Client.GetAsync("/files/big.bin");
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync(RawConnection.Get("/files/big.bin", $"If-None-Match: {first.Headers.ETag}"));
        var notModified = await connection.ReadResponseAsync();
        Assert.Equal(304, notModified.Status);
        await connection.SendAsync(RawConnection.Get("/files/big.bin", "Range: bytes=-10"));
        var suffix = await connection.ReadResponseAsync();
        Assert.Equal(206, suffix.Status);
        Assert.Equal(Site.Big[^10..], suffix.Body);
        await connection.SendAsync(RawConnection.Get("/files/big.bin", "Range: bytes=5000000-"));
        Assert.Equal(416, (await connection.ReadResponseAsync()).Status);
        await connection.SendAsync("HEAD /files/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal("1048576", head.Header("content-length"));
        await connection.SendAsync(RawConnection.Get("/files/same.txt"));
        Assert.Equal("same.txt from public", (await connection.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task POST_to_a_static_file_is_not_served_and_the_connection_survives()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync("POST /files/style.css HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
        var response = await connection.ReadResponseAsync("POST");
        Assert.True(response.Status is >= 400 and < 500, $"POST: {response.Status} {response.BodyText}");
        Assert.DoesNotContain("#123456", response.BodyText);
        await connection.SendAsync(RawConnection.Get("/files/style.css"));
        Assert.Equal(StaticSite.Css, (await connection.ReadResponseAsync()).BodyText);
    }

    [Theory]
    [InlineData("/files/../secret.txt")]
    [InlineData("/files/%2e%2e/secret.txt")]
    [InlineData("/files/..%2fsecret.txt")]
    [InlineData("/files/link-out.txt")]
    [InlineData("/files/dir-out/secret.txt")]
    public async Task Traversal_never_serves_the_outside_file(string target)
    {
        var result = await StaticSite.CurlAsync($"http://{Mica.Host}:{Mica.Port}{target}", "--path-as-is");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.DoesNotContain(Site.Secret, result.BodyText);
        Assert.True(result.Status is 400 or 404 || result.BodyText.StartsWith("WSGI APP GET /", StringComparison.Ordinal), $"{target}: {result}");
    }

    /// <summary>As <see cref="StaticFileTests.A_dot_segment_path_under_a_route_is_never_handed_to_the_app_as_a_route_path"/>, in front of WSGI.</summary>
    [Fact]
    public async Task A_dot_segment_path_under_the_route_is_never_handed_to_the_app_as_a_route_path()
    {
        var wrong = new List<string>();
        foreach (var target in new[] { "/files/../secret.txt", "/files/%2e%2e/secret.txt" })
        {
            var result = await StaticSite.CurlAsync($"http://{Mica.Host}:{Mica.Port}{target}", "--path-as-is");
            Assert.DoesNotContain(Site.Secret, result.BodyText);
            if (result.BodyText.StartsWith("WSGI APP GET /files/", StringComparison.Ordinal))
                wrong.Add($"{target} -> {result.Status} \"{result.BodyText}\"");
        }
        Assert.True(wrong.Count == 0, "expected a 404 (or the app given the normalised path /secret.txt), "
            + "but the app was handed a path under the route:\n  " + string.Join("\n  ", wrong));
    }

    [Fact]
    public async Task HTTP2_serves_files_in_front_of_WSGI()
    {
        var key = Keys.New();
        using var h2 = StaticSite.CreateHttp2Client(Mica);
        using (var big = await h2.GetAsync($"/files/big.bin?k={key}"))
        {
            Assert.Equal(HttpVersion.Version20, big.Version);
            Assert.Equal(HttpStatusCode.OK, big.StatusCode);
            Assert.Equal(StaticSite.Sha256(Site.Big), StaticSite.Sha256(await big.Content.ReadAsByteArrayAsync()));
        }
        using (var missing = await h2.GetAsync($"/files/nope-{key}"))
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using (var app = await h2.GetAsync("/wsgi-h2"))
            Assert.Equal("WSGI APP GET /wsgi-h2", await app.Content.ReadAsStringAsync());
        await AssertAppNeverSawAsync(key);
    }
}

/// <summary>Usage errors of --static-path-*: exit 2 before serving anything.</summary>
public sealed class CliStaticFileTests
{
    private static async Task<(int ExitCode, string Stderr)> RunAsync(params string[] args)
    {
        await using var mica = await MicaProcess.LaunchAsync([.. args, "static_app:app"]);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return (exitCode, string.Join('\n', mica.ServerStderrLines));
    }

    [Fact]
    public async Task More_mounts_than_routes_is_a_usage_error()
    {
        var (code, stderr) = await RunAsync("--static-path-mount", MicaProcess.AppsDir, "--static-path-mount", MicaProcess.RepoRoot,
            "--static-path-route", "/a");
        Assert.True(code == 2, $"exit {code}\n{stderr}");
        Assert.Contains("--static-path-route", stderr);
        Assert.DoesNotContain(") ready", stderr);
    }

    [Fact]
    public async Task More_routes_than_mounts_is_a_usage_error()
    {
        var (code, stderr) = await RunAsync("--static-path-mount", MicaProcess.AppsDir,
            "--static-path-route", "/a", "--static-path-route", "/b");
        Assert.True(code == 2, $"exit {code}\n{stderr}");
        Assert.Contains("--static-path-route", stderr);
    }

    [Fact]
    public async Task A_mount_that_does_not_exist_is_a_usage_error()
    {
        var missing = Path.Combine(Path.GetTempPath(), "mica-no-such-dir-" + Guid.NewGuid().ToString("N"));
        var (code, stderr) = await RunAsync("--static-path-mount", missing);
        Assert.True(code == 2, $"exit {code}\n{stderr}");
        Assert.Contains("--static-path-mount", stderr);
        Assert.Contains(missing, stderr);
    }
}
