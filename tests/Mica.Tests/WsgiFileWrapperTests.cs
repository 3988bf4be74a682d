using System.Net;
using System.Security.Cryptography;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>wsgi.file_wrapper: real files (zero-copy where possible) and file-like objects without fileno() (wsgi_app.py /file, /bytesio).</summary>
public sealed class WsgiFileWrapperTests(WsgiServer server) : ServerTests<WsgiServer>(server), IDisposable
{
    private const int MiB = 1024 * 1024;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A file of <paramref name="length"/> random bytes in the test's temp directory; its path and sha256.</summary>
    private (string Path, string Sha256, byte[] Data) MakeFile(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        var path = Path.Combine(_dir.Path, $"file-{seed}.bin");
        File.WriteAllBytes(path, data);
        return (path, Convert.ToHexStringLower(SHA256.HashData(data)), data);
    }

    private async Task<(HttpStatusCode Status, long? ContentLength, bool Chunked, string Sha256, long Length)> DownloadAsync(string target)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var client = Mica.CreateClient(TimeSpan.FromSeconds(60));
        using var response = await client.GetAsync(target, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
        var (sha, length) = await Wsgi.HashAsync(body, cts.Token);
        return (response.StatusCode, response.Content.Headers.ContentLength, response.Headers.TransferEncodingChunked == true, sha, length);
    }

    [Fact]
    public async Task Fifty_MiB_file_is_served_whole_with_its_content_length()
    {
        var key = Keys.New();
        var (path, sha, _) = MakeFile(50 * MiB, 1);
        var result = await DownloadAsync($"/file?cl=1&key={key}&path={Uri.EscapeDataString(path)}");
        Assert.Equal(HttpStatusCode.OK, result.Status);
        Assert.Equal(50L * MiB, result.ContentLength);
        Assert.Equal(50L * MiB, result.Length);
        Assert.Equal(sha, result.Sha256);
        var stats = await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("file_closed") >= 1, "the file closed by the file wrapper's close()");
        Assert.Equal(1, stats.Get("file_closed"));
    }

    [Fact]
    public async Task File_without_an_app_content_length_is_served_whole()
    {
        var key = Keys.New();
        var (path, sha, _) = MakeFile(3 * MiB + 17, 2);
        var result = await DownloadAsync($"/file?key={key}&path={Uri.EscapeDataString(path)}");
        Assert.Equal(HttpStatusCode.OK, result.Status);
        Assert.True(result.ContentLength is null || result.ContentLength == 3L * MiB + 17, $"Content-Length {result.ContentLength}");
        Assert.Equal(3L * MiB + 17, result.Length);
        Assert.Equal(sha, result.Sha256);
        await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("file_closed") >= 1, "the file closed by the file wrapper's close()");
    }

    [Fact]
    public async Task File_is_sent_from_its_current_position()
    {
        const int offset = 12_345;
        var (path, _, data) = MakeFile(MiB, 3);
        var expected = Convert.ToHexStringLower(SHA256.HashData(data.AsSpan(offset)));
        var result = await DownloadAsync($"/file?seek={offset}&blksize=1000&path={Uri.EscapeDataString(path)}");
        Assert.Equal(HttpStatusCode.OK, result.Status);
        Assert.Equal(MiB - offset, result.Length);
        Assert.Equal(expected, result.Sha256);
    }

    [Fact]
    public async Task Small_file_served_twice_on_one_connection()
    {
        var (path, _, data) = MakeFile(10_000, 4);
        await using var connection = await RawConnection.ConnectAsync(Mica);
        for (var i = 0; i < 2; i++)
        {
            await connection.SendAsync(RawConnection.Get($"/file?cl=1&path={Uri.EscapeDataString(path)}"));
            var response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.Status);
            Assert.Equal(data, response.Body);
        }
    }

    [Fact]
    public async Task File_like_object_without_fileno_is_iterated_in_blocks()
    {
        var key = Keys.New();
        const int size = 1_000_003;
        var expected = TestData.Pattern(size);
        var result = await DownloadAsync($"/bytesio?size={size}&blksize=1000&key={key}");
        Assert.Equal(HttpStatusCode.OK, result.Status);
        Assert.Equal(size, result.Length);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(expected)), result.Sha256);
        var stats = await Wsgi.WaitForStatsAsync(Client, key, s => s.Get("file_closed") >= 1, "the BytesIO closed by the file wrapper's close()");
        Assert.Equal(1, stats.Get("file_closed"));
    }
}
