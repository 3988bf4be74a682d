using System.Net;
using System.Security.Cryptography;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>proto_asgi:app on TCP, with a 5 MiB random file and an empty one to send.</summary>
public sealed class PathsendServer : ProtoServerFixture
{
    private readonly ScratchDir _dir = new();
    public string Dir => _dir.Path;
    public string BigFile => Path.Combine(Dir, "big.bin");
    public string EmptyFile => Path.Combine(Dir, "empty.bin");
    public byte[] BigHash { get; private set; } = [];

    protected override string App => "proto_asgi:app";

    protected override async Task<string[]> OptionsAsync()
    {
        if (!File.Exists(BigFile))
        {
            var data = RandomNumberGenerator.GetBytes(5 * 1024 * 1024);
            await File.WriteAllBytesAsync(BigFile, data);
            await File.WriteAllBytesAsync(EmptyFile, []);
            BigHash = SHA256.HashData(data);
        }
        return [];
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>The ASGI http.response.pathsend extension.</summary>
public sealed class PathsendTests(PathsendServer fixture) : ProtoServerTests<PathsendServer>(fixture)
{
    private static string Target(string path) => "/pathsend?path=" + Uri.EscapeDataString(path);

    [Fact]
    public async Task The_extension_is_in_the_scope()
    {
        var result = await Curl.OkAsync(Server.Base + "/x");
        Assert.True(result.Json.GetProperty("scope").GetProperty("extensions").TryGetProperty("http.response.pathsend", out _), result.BodyText);
    }

    [Fact]
    public async Task A_5_MiB_file_arrives_byte_for_byte_with_its_Content_Length()
    {
        using var client = Clients.Http11(Server.Base);
        using var response = await client.GetAsync(Target(Fixture.BigFile));
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}\n{Mica.Dump(30)}");
        Assert.Equal(5 * 1024 * 1024, response.Content.Headers.ContentLength);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(5 * 1024 * 1024, body.Length);
        Assert.Equal(Convert.ToHexString(Fixture.BigHash), Convert.ToHexString(SHA256.HashData(body)));
    }

    [Fact]
    public async Task A_5_MiB_file_arrives_byte_for_byte_over_HTTP2()
    {
        using var client = Clients.Http2(Server.Base);
        using var response = await client.GetAsync(Target(Fixture.BigFile));
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}\n{Mica.Dump(30)}");
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(5 * 1024 * 1024, response.Content.Headers.ContentLength);
        Assert.Equal(Convert.ToHexString(Fixture.BigHash), Convert.ToHexString(SHA256.HashData(body)));
    }

    [Fact]
    public async Task An_empty_file_is_an_empty_body_with_Content_Length_0()
    {
        await using var connection = await RawConnection.ConnectAsync(Server.Mica.Host, Server.Port);
        await connection.SendAsync(RawConnection.Get(Target(Fixture.EmptyFile), "Connection: close"));
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.Equal("0", head.Header("content-length"));
        Assert.Empty(await connection.ReadToEndAsync());
    }

    [Fact]
    public async Task HEAD_gets_the_Content_Length_and_no_body()
    {
        await using var connection = await RawConnection.ConnectAsync(Server.Mica.Host, Server.Port);
        await connection.SendAsync($"HEAD {Target(Fixture.BigFile)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.Equal((5 * 1024 * 1024).ToString(), head.Header("content-length"));
        var rest = await connection.ReadToEndAsync();
        Assert.True(rest.Length == 0, $"HEAD response followed by {rest.Length} bytes");
    }

    [Fact]
    public async Task A_missing_file_is_a_500_with_an_error_logged_and_the_server_keeps_serving()
    {
        var missing = Path.Combine(Fixture.Dir, "no-such-file-" + Keys.New());
        var mark = Mica.Mark();
        var result = await Curl.RunAsync(Server.Base + Target(missing));
        Assert.True(result.ExitCode == 0 && result.Status == 500, result.ToString());
        await Mica.WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Contains("[ERROR]", StringComparison.Ordinal), TimeSpan.FromSeconds(10), mark);

        var next = await Curl.OkAsync(Server.Base + "/hello");
        Assert.Equal("hello", next.BodyText);
        using var client = Clients.Http11(Server.Base);
        var again = await client.GetByteArrayAsync(Target(Fixture.BigFile));
        Assert.Equal(Convert.ToHexString(Fixture.BigHash), Convert.ToHexString(SHA256.HashData(again)));
    }

    [Fact]
    public async Task The_file_descriptor_is_closed_after_complete_HEAD_and_aborted_responses()
    {
        var worker = Mica.WorkerPid;
        Assert.True(worker != 0, Mica.Dump());
        int OpenOnFile() => Directory.EnumerateFiles($"/proc/{worker}/fd")
            .Count(fd => { try { return new FileInfo(fd).LinkTarget == Fixture.BigFile; } catch (IOException) { return false; } });

        using var client = Clients.Http11(Server.Base);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(5 * 1024 * 1024, (await client.GetByteArrayAsync(Target(Fixture.BigFile))).Length);
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, Target(Fixture.BigFile)));
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        }
        // Responses abandoned after their first bytes: the client closes the connection mid-file.
        for (var i = 0; i < 5; i++)
        {
            using var aborting = Clients.Http11(Server.Base);
            using var response = await aborting.GetAsync(Target(Fixture.BigFile), HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            await body.ReadAtLeastAsync(new byte[1024], 1024);
        }
        await Master.WaitUntilAsync(() => OpenOnFile() == 0, "the worker closes its descriptors on the file", TimeSpan.FromSeconds(10));
        var again = await Curl.OkAsync(Server.Base + "/hello");
        Assert.Equal("hello", again.BodyText);
    }

    [Fact]
    public async Task A_directory_is_a_500()
    {
        var result = await Curl.RunAsync(Server.Base + Target(Fixture.Dir));
        Assert.True(result.ExitCode == 0 && result.Status == 500, result.ToString());
        var next = await Curl.OkAsync(Server.Base + "/hello");
        Assert.Equal("hello", next.BodyText);
    }

    [Fact]
    public async Task A_relative_path_is_a_500()
    {
        var result = await Curl.RunAsync(Server.Base + Target("big.bin"));
        Assert.True(result.ExitCode == 0 && result.Status == 500, result.ToString());
        var next = await Curl.OkAsync(Server.Base + "/hello");
        Assert.Equal("hello", next.BodyText);
    }
}
