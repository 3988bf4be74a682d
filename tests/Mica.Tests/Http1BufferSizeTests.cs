using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary><c>--http1-buffer-size</c>: the request head must fit in the connection's input buffer, as in Granian (hyper).</summary>
public sealed class Http1BufferSizeTests
{
    private static async Task<int> StatusWithHeaderAsync(MicaProcess mica, int headerBytes)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(RawConnection.Get("/", "X-Big: " + new string('a', headerBytes), "Connection: close"));
        return (await connection.ReadResponseAsync()).Status;
    }

    [Fact]
    public async Task A_head_bigger_than_the_buffer_is_431_and_one_that_fits_is_served()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--http1-buffer-size", "8192"]);
        Assert.Equal(431, await StatusWithHeaderAsync(mica, 12 * 1024));
        Assert.Equal(404, await StatusWithHeaderAsync(mica, 4 * 1024));   // raw_app's answer to "/": served
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task The_default_buffer_takes_the_same_head()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app");
        Assert.Equal(404, await StatusWithHeaderAsync(mica, 12 * 1024));
        Assert.Equal(0, await mica.StopAsync());
    }
}
