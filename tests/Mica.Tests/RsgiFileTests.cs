using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>rsgi_app.py with a scratch directory: "0123456789", a 5 MiB random file, an empty file.</summary>
public sealed class RsgiFileServer : RsgiAppServer
{
    private readonly ScratchDir _dir = new();
    public string Dir => _dir.Path;
    public string Ten => _dir.File("ten.txt");
    public string Big => _dir.File("big.bin");
    public string Empty => _dir.File("empty.bin");
    public byte[] BigData { get; } = TestData.RandomBytes(5 * 1024 * 1024, 61);

    protected override async Task<string[]> OptionsAsync()
    {
        if (!File.Exists(Big))
        {
            await File.WriteAllTextAsync(Ten, "0123456789");
            await File.WriteAllBytesAsync(Big, BigData);
            await File.WriteAllBytesAsync(Empty, []);
        }
        return await base.OptionsAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>
/// response_file and response_file_range: whole files (large, empty, HEAD, HTTP/2), Granian's range
/// cases (start inclusive, end exclusive, the app's own headers), invalid ranges, missing files.
/// </summary>
public sealed class RsgiFileTests(RsgiFileServer fixture) : ProtoServerTests<RsgiFileServer>(fixture)
{
    private Task<RawResponse> FileAsync(string target, string path, string method = "GET", params string[] headers) =>
        Rsgi.RawAsync(Mica, Rsgi.Request(method, target, ["file-path: " + path, .. headers]), method);

    [Fact]
    public async Task A_5_MiB_file_arrives_byte_for_byte_with_the_apps_headers()
    {
        using var client = Clients.Http11(Server.Base);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/file");
        request.Headers.Add("file-path", Fixture.Big);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}\n{Mica.Dump(30)}");
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("file", response.Headers.GetValues("x-app").Single());
        Assert.Equal(Fixture.BigData.Length, body.Length);
        Assert.Equal(TestData.Sha256(Fixture.BigData), TestData.Sha256(body));
    }

    [Fact]
    public async Task The_apps_content_type_and_content_length_are_sent()
    {
        // As Granian's test_file (content-type image/png, the app's content-length).
        var response = await FileAsync("/file?cl=1&ct=image/png", Fixture.Ten);
        Assert.Equal(200, response.Status);
        Assert.Equal("image/png", response.Header("content-type"));
        Assert.Equal("10", response.Header("content-length"));
        Assert.Equal("0123456789", response.BodyText);
    }

    [Fact]
    public async Task The_apps_status_is_sent()
    {
        var response = await FileAsync("/file?status=203", Fixture.Ten);
        Assert.Equal(203, response.Status);
        Assert.Equal("0123456789", response.BodyText);
    }

    [Fact]
    public async Task A_5_MiB_file_over_HTTP2()
    {
        using var client = Clients.Http2(Server.Base);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/file") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.Add("file-path", Fixture.Big);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(TestData.Sha256(Fixture.BigData), TestData.Sha256(body));
    }

    [Fact]
    public async Task An_empty_file_is_an_empty_body()
    {
        var response = await FileAsync("/file", Fixture.Empty);
        Assert.Equal(200, response.Status);
        Assert.Empty(response.Body);
    }

    [Fact]
    public async Task Head_on_a_file_sends_the_length_and_no_body()
    {
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"HEAD /file?cl=1 HTTP/1.1\r\nHost: localhost\r\nfile-path: {Fixture.Big}\r\n\r\n");
        var head = await connection.ReadResponseAsync("HEAD");
        Assert.Equal(200, head.Status);
        Assert.Equal(Fixture.BigData.Length.ToString(), head.Header("content-length"));
        // Any file bytes sent after the head would be read as the next status line.
        await connection.SendAsync(RawConnection.Get("/bytearray"));
        Assert.Equal("from a bytearray", (await connection.ReadResponseAsync()).BodyText);
    }

    [Fact]
    public async Task A_missing_file_is_a_404_Not_found_and_the_apps_response_is_dropped()
    {
        var missing = Path.Combine(Fixture.Dir, "missing-" + Keys.New());
        var mark = Mica.Mark();
        var response = await FileAsync("/file?status=200", missing);
        Assert.Equal(404, response.Status);
        Assert.Equal("Not found", response.BodyText);
        Assert.Null(response.Header("x-app"));
        await Mica.WaitForStderrAsync(missing, TimeSpan.FromSeconds(10), mark);
        Assert.DoesNotContain(Mica.Lines, l => l.Index > mark && l.Text.Contains("[ERROR]", StringComparison.Ordinal));
        await Rsgi.AssertStillServingAsync(Mica);
    }

    [Fact]
    public async Task A_directory_is_a_404()
    {
        var response = await FileAsync("/file", Fixture.Dir);
        Assert.Equal(404, response.Status);
        Assert.Equal("Not found", response.BodyText);
        await Rsgi.AssertStillServingAsync(Mica);
    }

    // ------------------------------------------------------------------ ranges (Granian's test_file_range*)

    [Theory]
    [InlineData(0, 10)]
    [InlineData(3, 8)]
    [InlineData(5, 6)]
    [InlineData(9, 10)]
    public async Task A_range_is_a_206_with_the_apps_headers_and_those_bytes(int start, int end)
    {
        var response = await FileAsync("/file_range", Fixture.Ten, "GET", $"range: bytes={start}-{end - 1}");
        Assert.Equal(206, response.Status);
        Assert.Equal($"bytes {start}-{end - 1}/10", response.Header("content-range"));
        Assert.Equal((end - start).ToString(), response.Header("content-length"));
        Assert.Equal("0123456789"[start..end], response.BodyText);
    }

    [Fact]
    public async Task A_range_past_the_end_is_cut_at_the_end()
    {
        var response = await FileAsync("/file_range", Fixture.Ten, "GET", "range: bytes=0-20");
        Assert.Equal(206, response.Status);
        Assert.Equal("bytes 0-9/10", response.Header("content-range"));
        Assert.Equal("10", response.Header("content-length"));
        Assert.Equal("0123456789", response.BodyText);
    }

    [Fact]
    public async Task A_range_starting_past_the_end_is_the_apps_416()
    {
        var response = await FileAsync("/file_range", Fixture.Ten, "GET", "range: bytes=10-20");
        Assert.Equal(416, response.Status);
        Assert.Equal("bytes */10", response.Header("content-range"));
        Assert.Equal("out", response.Header("x-reason"));
    }

    [Fact]
    public async Task An_inverted_range_raises_ValueError_before_the_response_so_the_app_can_still_answer()
    {
        // bytes=8-4: response_file_range(..., 8, 5) raises ValueError; the app then sends its 416.
        var mark = Mica.Mark();
        var response = await FileAsync("/file_range", Fixture.Ten, "GET", "range: bytes=8-4");
        Assert.Equal(416, response.Status);
        Assert.Equal("bytes */10", response.Header("content-range"));
        Assert.Equal("invalid", response.Header("x-reason"));
        await Rsgi.AssertStillServingAsync(Mica);
        Assert.DoesNotContain(Mica.Lines, l => l.Index > mark && l.Text.Contains("[ERROR]", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(3, 8, "34567")]
    [InlineData(0, 1, "0")]
    [InlineData(7, 100, "789")]     // end past the end of the file: up to the end
    [InlineData(12, 20, "")]        // start past the end: nothing
    public async Task Response_file_range_sends_start_inclusive_to_end_exclusive(int start, int end, string expected)
    {
        var response = await FileAsync($"/file_range_raw?start={start}&end={end}", Fixture.Ten);
        Assert.Equal(200, response.Status);
        Assert.Equal("range", response.Header("x-app"));
        Assert.Equal(expected, response.BodyText);
        if (response.Header("content-length") is { } length) Assert.Equal(expected.Length.ToString(), length);
    }

    [Theory]
    [InlineData(5, 5)]
    [InlineData(6, 2)]
    [InlineData(-1, 3)]
    public async Task Response_file_range_with_start_not_before_end_raises_ValueError(int start, int end)
    {
        var mark = Mica.Mark();
        var response = await FileAsync($"/file_range_raw?start={start}&end={end}", Fixture.Ten);
        Assert.Equal(500, response.Status);
        await Rsgi.WaitForErrorAsync(Mica, "Exception in RSGI application", mark);
        await Mica.WaitForStderrAsync("ValueError", TimeSpan.FromSeconds(10), mark);
    }

    [Fact]
    public async Task A_range_of_a_missing_file_is_a_404()
    {
        var response = await FileAsync("/file_range_raw?start=0&end=3", Path.Combine(Fixture.Dir, "missing-" + Keys.New()));
        Assert.Equal(404, response.Status);
        Assert.Equal("Not found", response.BodyText);
        Assert.Null(response.Header("x-app"));
    }

    [Fact]
    public async Task A_range_of_the_5_MiB_file_over_HTTP2()
    {
        const int start = 1_000_001, end = 4_000_003;
        using var client = Clients.Http2(Server.Base);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/file_range_raw?start={start}&end={end}") { Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
        request.Headers.Add("file-path", Fixture.Big);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(TestData.Sha256(Fixture.BigData[start..end]), TestData.Sha256(body));
    }
}
