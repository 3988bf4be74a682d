using System.Diagnostics;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Workers that die (SIGKILL, crash), with and without --respawn-failed-workers, and crash loops.</summary>
public sealed class WorkerFailureTests
{
    [Fact]
    public async Task Killed_worker_without_respawn_makes_the_master_exit_1_and_stop_the_others()
    {
        await using var mica = await Master.StartAsync(2);
        var victim = mica.SpawnedWorkers.Single(w => w.Id == 1);
        var other = mica.SpawnedWorkers.Single(w => w.Id == 2);

        _ = Libc.kill(victim.Pid, Libc.SIGKILL);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{mica.Dump()}");
        Assert.Single(Master.LinesWith(mica, $"worker-1 (pid {victim.Pid}) died unexpectedly (killed by signal 9)"));
        Assert.Single(Master.LinesWith(mica, $"worker-2 (pid {other.Pid}) stopped"));
        Assert.Empty(Master.LinesWith(mica, "Respawning"));
        Assert.Equal(2, mica.SpawnedWorkers.Count);
        await mica.AssertNoOrphansAsync();
    }

    [Fact]
    public async Task Killed_worker_is_respawned_with_respawn_failed_workers_and_serves_again()
    {
        await using var mica = await Master.StartAsync(2, ["--respawn-failed-workers", "--respawn-interval", "0.5"]);
        var victim = mica.SpawnedWorkers.Single(w => w.Id == 1);
        var other = mica.SpawnedWorkers.Single(w => w.Id == 2);

        var mark = mica.Mark();
        _ = Libc.kill(victim.Pid, Libc.SIGKILL);
        await mica.WaitForStderrAsync($"worker-1 (pid {victim.Pid}) died unexpectedly (killed by signal 9)", after: mark);
        await mica.WaitForStderrAsync("Respawning worker-1", after: mark);
        var ready = await mica.WaitForReadyWorkersAsync(1, after: mark);
        var (id, pid) = Assert.Single(ready);
        Assert.Equal(1, id);
        Assert.NotEqual(victim.Pid, pid);

        Assert.Equal(new[] { other.Pid, pid }.Order(), (await mica.WaitForChildCountAsync(2)).Order());
        Assert.True(other.IsAlive, "the other worker was disturbed");
        Assert.False(mica.HasExited);
        await using (var load = LoadGenerator.Start(mica, concurrency: 8, keepAlive: false))
        {
            await load.WaitForMoreSuccessesAsync(200);
            await load.StopAsync();
            Assert.True(load.Failed == 0, load.Summary());
            Assert.True(load.Bodies.ContainsKey(pid.ToString()), $"the respawned worker {pid} served nothing: {load.Summary()}");
        }
        await Master.StopAndCheckAsync(mica);
    }

    /// <summary>
    /// A worker dies under load, killed or crashed by a C extension (a segfault through ctypes):
    /// the master survives, the other worker serves on alone, and the respawned one serves again.
    /// Only requests the dead worker held can fail, and only by their connection breaking.
    /// </summary>
    [Theory]
    [InlineData("sigkill")]
    [InlineData("segfault")]
    public async Task A_worker_dying_under_load_is_respawned_while_the_other_serves_on(string death)
    {
        const int Concurrency = 8;
        await using var mica = await Master.StartAsync(2, ["--respawn-failed-workers", "--respawn-interval", "2"]);
        await using var load = LoadGenerator.Start(mica, concurrency: Concurrency, keepAlive: false);
        await load.WaitForMoreSuccessesAsync(200);

        var mark = mica.Mark();
        int victim;
        if (death == "sigkill")
        {
            victim = mica.SpawnedWorkers.Single(w => w.Id == 1).Pid;
            _ = Libc.kill(victim, Libc.SIGKILL);
        }
        else
        {
            await Master.ExitWorkerAsync(mica, "/segfault");
            victim = int.Parse((await mica.WaitForStdoutAsync("PIDAPP SEGFAULT ", after: mark)).Text.Split(' ')[2]);
        }
        var died = await mica.WaitForStderrAsync($"(pid {victim}) died unexpectedly (killed by signal {(death == "sigkill" ? 9 : 11)})", after: mark);
        var survivor = mica.SpawnedWorkers.Single(w => w.Pid != victim && w.IsAlive);

        // While the dead worker waits for its respawn, the other one serves every new connection.
        var beforeAlone = load.Bodies.GetValueOrDefault(survivor.Pid.ToString());
        await load.WaitForMoreSuccessesAsync(200);
        Assert.Empty(mica.ReadyWorkers(after: mark));
        Assert.True(load.Bodies.GetValueOrDefault(survivor.Pid.ToString()) >= beforeAlone + 200, load.Summary());

        var (_, respawned) = Assert.Single(await mica.WaitForReadyWorkersAsync(1, TimeSpan.FromSeconds(30), after: mark));
        await Master.WaitUntilAsync(() => load.Bodies.ContainsKey(respawned.ToString()), $"the respawned worker {respawned} serving\n{load.Summary()}");
        await load.StopAsync();

        Assert.False(mica.HasExited);
        Assert.True(survivor.IsAlive, "the other worker was disturbed");
        Assert.True(load.FailedWith(LoadFailure.Status) == 0 && load.Failed <= Concurrency,
            $"only the requests the dead worker held may fail, by their connection breaking: {load.Summary()}");
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Worker_dying_again_soon_after_its_respawn_is_a_crash_loop_exit_1()
    {
        await using var mica = await Master.StartAsync(1, ["--respawn-failed-workers", "--respawn-interval", "0.5"]);
        var first = mica.WorkerPid;

        var mark = mica.Mark();
        await Master.ExitWorkerAsync(mica, "/exit?code=3");
        await mica.WaitForStderrAsync($"worker-1 (pid {first}) died unexpectedly (exit code 3)", after: mark);
        await mica.WaitForStderrAsync("Respawning worker-1", after: mark);
        var (_, second) = Assert.Single(await mica.WaitForReadyWorkersAsync(1, after: mark));
        Assert.NotEqual(first, second);

        // Well within 5.5 s of the respawn.
        await Master.ExitWorkerAsync(mica, "/exit?code=3");
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{mica.Dump()}");
        Assert.Single(Master.LinesWith(mica, "crash loop"));
        Assert.Equal(2, mica.SpawnedWorkers.Count);
        await mica.AssertNoOrphansAsync();
    }

    [Fact]
    public async Task Respawned_worker_that_cannot_start_any_more_is_a_crash_loop_exit_1()
    {
        using var dir = new TempDirectory();
        var marker = Path.Combine(dir.Path, "broken");
        await using var mica = await Master.StartAsync(1, ["--respawn-failed-workers", "--respawn-interval", "0.5"],
            environment: new Dictionary<string, string?> { ["PIDAPP_FAIL_MARKER"] = marker });
        var first = mica.WorkerPid;

        await File.WriteAllTextAsync(marker, "");   // from now on, the app fails to import
        _ = Libc.kill(first, Libc.SIGKILL);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{mica.Dump()}");
        Assert.Single(Master.LinesWith(mica, "Respawning worker-1"));
        Assert.Contains(mica.StderrLines, l => l.Contains("failed to start", StringComparison.Ordinal) && l.Contains("refusing to start", StringComparison.Ordinal));
        Assert.Single(Master.LinesWith(mica, "crash loop"));
        Assert.Equal(2, mica.SpawnedWorkers.Count);
        await mica.AssertNoOrphansAsync();
    }

    [Fact]
    public async Task Workers_kill_timeout_kills_a_worker_stuck_in_lifespan_shutdown()
    {
        await using var mica = await Master.StartAsync(1, ["--workers-kill-timeout", "2"],
            environment: new Dictionary<string, string?> { ["PIDAPP_STUCK_SHUTDOWN"] = "1" });
        var worker = mica.WorkerPid;

        var clock = Stopwatch.StartNew();
        mica.Signal(Libc.SIGTERM);
        await mica.WaitForStdoutAsync($"PIDAPP SHUTDOWN {worker}");
        await mica.WaitForExitAsync(TimeSpan.FromSeconds(15));
        var took = clock.Elapsed;
        Assert.Single(Master.LinesWith(mica, $"Killing worker-1 (pid {worker})"));
        Assert.Single(Master.LinesWith(mica, $"worker-1 (pid {worker}) stopped abnormally (killed by signal 9)"));
        Assert.True(took >= TimeSpan.FromSeconds(1.5) && took < TimeSpan.FromSeconds(8),
            $"stop took {took.TotalSeconds:0.00} s with --workers-kill-timeout 2\n{mica.Dump()}");
        await mica.AssertNoOrphansAsync();
    }
}

/// <summary>--workers-lifetime and --workers-max-rss.</summary>
public sealed class WorkerLimitTests
{
    [Theory]
    [InlineData("59")]
    [InlineData("0")]
    [InlineData("30s")]
    public async Task Workers_lifetime_below_60_is_a_usage_error(string value)
    {
        await using var mica = await MicaProcess.LaunchAsync(["--workers-lifetime", value, Master.PidApp]);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var stderr = mica.ServerStderrLines;
        Assert.True(exitCode == 2, $"exit code {exitCode}, expected 2\n{mica.Dump()}");
        var line = Assert.Single(stderr);
        Assert.StartsWith("mica: error:", line);
        Assert.Contains("--workers-lifetime", line);
        Assert.Empty(mica.SpawnedWorkers);
    }

    [Theory]
    [InlineData("60")]
    [InlineData("1m")]
    public async Task Workers_lifetime_of_60_is_accepted(string value)
    {
        await using var mica = await Master.StartAsync(1, ["--workers-lifetime", value]);
        Assert.Equal(mica.WorkerPid.ToString(), await Master.GetOnNewConnectionAsync(mica));
        Assert.Empty(Master.LinesWith(mica, "Replacing"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Workers_max_rss_replaces_a_worker_over_the_limit_while_the_port_keeps_answering()
    {
        await using var mica = await Master.StartAsync(1, ["--workers-max-rss", "1", "--rss-sample-interval", "1"]);
        var first = mica.WorkerPid;
        var clock = Stopwatch.StartNew();
        await using var load = LoadGenerator.Start(mica, concurrency: 4, keepAlive: false);

        var replacing = await mica.WaitForStderrAsync($"Replacing worker-1 (pid {first})", TimeSpan.FromSeconds(10));
        Assert.Contains("memory", replacing.Text);
        var spawned = await mica.WaitForStderrAsync($"to replace worker-1 (pid {first})", TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the replacement was spawned after {clock.Elapsed.TotalSeconds:0.0} s\n{mica.Dump()}");
        await mica.WaitForStderrAsync($"worker-1 (pid {first}) stopped", TimeSpan.FromSeconds(15));
        var second = mica.SpawnedWorkers.Single(w => spawned.Text.Contains($"Spawned worker-1 (pid {w.Pid}) to replace", StringComparison.Ordinal)).Pid;
        Assert.NotEqual(first, second);
        Assert.False(MicaProcess.ProcessAlive(first));

        await load.WaitForMoreSuccessesAsync(50);
        await load.StopAsync();
        Assert.True(load.Failed == 0, $"{load.Summary()}\n{mica.Dump()}");
        Assert.True(load.Bodies.ContainsKey(first.ToString()) && load.Bodies.Keys.Any(b => b != first.ToString()),
            $"expected answers from the first worker and from its replacement(s): {load.Summary()}");
        await Master.StopAndCheckAsync(mica);
    }
}
