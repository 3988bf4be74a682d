using System.Diagnostics;
using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Graceful and forced stops: SIGTERM/SIGINT, in-flight requests, no worker left behind.</summary>
public sealed class SignalTests
{
    private static async Task AssertWorkerGoneAsync(MicaProcess mica)
    {
        Assert.True(mica.WorkerPid > 0, "no 'Spawned worker-1 (pid N)' line\n" + mica.Dump());
        // The master reaps its worker before exiting; allow the kernel a moment to drop the entry.
        var deadline = Stopwatch.StartNew();
        while (MicaProcess.ProcessAlive(mica.WorkerPid) && deadline.Elapsed < TimeSpan.FromSeconds(2))
            await Task.Delay(20);
        Assert.False(MicaProcess.ProcessAlive(mica.WorkerPid), $"worker pid {mica.WorkerPid} is still alive after mica exited");
    }

    [Fact]
    public async Task Sigterm_lets_an_in_flight_request_finish_then_exits_0()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync("raw_app:app");
        var workerPid = mica.WorkerPid;
        Assert.True(MicaProcess.IsMicaWorker(workerPid), $"pid {workerPid} is not a running mica worker");
        using var client = mica.CreateClient();
        var request = client.GetAsync($"/sleep?s=1&key={key}");
        await mica.WaitForStdoutAsync($"SLEEP START {key}");

        mica.Signal(Libc.SIGTERM);
        using var response = await request;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1.0, Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("slept").GetDouble());

        Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(15)));
        Assert.Contains(mica.StderrLines, l => l.Contains("SIGTERM", StringComparison.Ordinal));
        Assert.Contains(mica.StdoutLines, l => l == $"SLEEP END {key}");
        await AssertWorkerGoneAsync(mica);
    }

    [Fact]
    public async Task Sigint_stops_gracefully_with_exit_0()
    {
        await using var mica = await MicaProcess.StartAsync("hello:app");
        using (var client = mica.CreateClient())
            Assert.Equal("Hello, world!", await client.GetStringAsync("/"));
        Assert.Equal(0, await mica.StopAsync());
        Assert.Contains(mica.StderrLines, l => l.Contains("Shutdown complete", StringComparison.Ordinal));
        await AssertWorkerGoneAsync(mica);
    }

    [Fact]
    public async Task Second_sigint_kills_a_worker_stuck_in_a_request()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync("raw_app:app");
        using var client = mica.CreateClient(TimeSpan.FromSeconds(40));
        var request = client.GetAsync($"/sleep?s=30&key={key}");
        await mica.WaitForStdoutAsync($"SLEEP START {key}");

        var mark = mica.Mark();
        mica.Signal(Libc.SIGINT);
        await mica.WaitForStderrAsync("shutting down gracefully", after: mark);
        mica.Signal(Libc.SIGINT);
        await mica.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await AssertWorkerGoneAsync(mica);
        await Assert.ThrowsAnyAsync<Exception>(() => request);
    }

    [Fact]
    public async Task Workers_kill_timeout_bounds_a_graceful_stop()
    {
        var key = Keys.New();
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--workers-kill-timeout", "1"]);
        using var client = mica.CreateClient(TimeSpan.FromSeconds(40));
        var request = client.GetAsync($"/sleep?s=30&key={key}");
        await mica.WaitForStdoutAsync($"SLEEP START {key}");

        var clock = Stopwatch.StartNew();
        mica.Signal(Libc.SIGTERM);
        await mica.WaitForExitAsync(TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"stop took {clock.Elapsed.TotalSeconds:0.0} s with --workers-kill-timeout 1");
        await AssertWorkerGoneAsync(mica);
        await Assert.ThrowsAnyAsync<Exception>(() => request);
    }
}
