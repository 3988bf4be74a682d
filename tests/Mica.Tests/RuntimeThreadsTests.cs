using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// <c>--runtime-threads</c> and <c>--runtime-mode</c>: Granian's runtime threads are, in a Mica
/// worker, .NET's socket I/O threads (named ".NET Sockets"), where Kestrel parses and writes.
/// </summary>
public sealed class RuntimeThreadsTests
{
    private static async Task<int> SocketThreadsAsync(params string[] options)
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", options);
        using (var client = mica.CreateClient())
        using (var response = await client.GetAsync("/status?code=204")) Assert.Equal(204, (int)response.StatusCode);
        var count = Directory.GetDirectories($"/proc/{mica.WorkerPid}/task")
            .Count(task => File.ReadAllText(Path.Combine(task, "comm")).Trim() == ".NET Sockets");
        Assert.Equal(0, await mica.StopAsync());
        return count;
    }

    [Fact]
    public async Task Runtime_threads_3_gives_the_worker_three_socket_threads() => Assert.Equal(3, await SocketThreadsAsync("--runtime-threads", "3"));

    [Fact]
    public async Task Runtime_blocking_threads_caps_the_workers_thread_pool()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--runtime-blocking-threads", "64", "--log-level", "debug"]);
        await mica.WaitForStderrAsync("thread pool: at most 64 threads (--runtime-blocking-threads 64)");
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Runtime_mode_st_gives_the_worker_one_socket_thread() => Assert.Equal(1, await SocketThreadsAsync("--runtime-mode", "st", "--runtime-threads", "4"));
}
