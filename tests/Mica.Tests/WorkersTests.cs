using Mica.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Mica.Tests;

/// <summary>--workers N, SIGHUP (rolling replacement), SIGTTIN / SIGTTOU, --process-name.</summary>
public sealed class WorkersTests
{
    [Fact]
    public async Task Workers_2_are_children_of_the_master_on_one_port_and_share_new_connections()
    {
        await using var mica = await Master.StartAsync(2);
        var spawned = mica.SpawnedWorkers;
        Assert.Equal([1, 2], spawned.Select(w => w.Id).Order());
        Assert.Equal(spawned.Select(w => w.Pid).Order(), (await mica.WaitForChildCountAsync(2)).Order());
        Assert.Single(Master.LinesWith(mica, "Listening at:"));

        await using (var load = LoadGenerator.Start(mica, concurrency: 8, keepAlive: false))
        {
            await load.WaitForMoreSuccessesAsync(300);
            await load.StopAsync();
            Assert.True(load.Failed == 0, load.Summary());
            var pids = load.Bodies.Keys.Select(int.Parse).ToHashSet();
            Assert.True(pids.IsSubsetOf(spawned.Select(w => w.Pid)), $"a response from a pid that is no worker: {load.Summary()}");
            Assert.True(pids.Count == 2, $"expected both workers to serve new connections: {load.Summary()}");
        }
        await Master.StopAndCheckAsync(mica);
    }

    [Theory]
    [InlineData(null, "2")]
    [InlineData("4", "4")]
    public async Task Workers_run_with_two_malloc_arenas_unless_told_otherwise(string? given, string expected)
    {
        await using var mica = await Master.StartAsync(1, environment: new Dictionary<string, string?> { ["MALLOC_ARENA_MAX"] = given });
        Assert.Equal(expected, await Master.GetOnNewConnectionAsync(mica, "/env?name=MALLOC_ARENA_MAX"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Sighup_replaces_every_worker_and_keeps_the_master_pid_file_and_port()
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        await using var mica = await Master.StartAsync(2, ["--pid-file", pidFile]);
        var port = mica.Port;
        var before = await mica.WaitForChildCountAsync(2);
        var old = mica.ReadyWorkers();
        var pidFileContent = await File.ReadAllTextAsync(pidFile);
        var pidFileIdentity = Master.Identity(pidFile);
        Assert.Equal($"{mica.Pid}\n", pidFileContent);

        var mark = mica.Mark();
        mica.Signal(Libc.SIGHUP);
        await mica.WaitForStderrAsync("Received SIGHUP", after: mark);
        var replacements = new List<int>();
        foreach (var (id, pid) in old)
        {
            var spawned = await mica.WaitForLineAsync(l => l.Text.Contains($"to replace worker-{id} (pid {pid})", StringComparison.Ordinal),
                TimeSpan.FromSeconds(30), mark);
            replacements.Add(mica.SpawnedWorkers.Single(w => spawned.Text.Contains($"Spawned worker-{id} (pid {w.Pid}) to replace", StringComparison.Ordinal)).Pid);
            await mica.WaitForStderrAsync($"worker-{id} (pid {pid}) stopped", TimeSpan.FromSeconds(30), mark);
        }

        Assert.False(mica.HasExited, mica.Dump());
        var after = await mica.WaitForChildCountAsync(2);
        Assert.Equal(replacements.Order(), after.Order());
        Assert.Empty(before.Intersect(after));
        Assert.All(before, pid => Assert.False(MicaProcess.ProcessAlive(pid), $"old worker pid {pid} still alive"));
        Assert.Equal(port, mica.Port);
        Assert.Equal(pidFileContent, await File.ReadAllTextAsync(pidFile));
        Assert.Equal(pidFileIdentity, Master.Identity(pidFile));
        for (var i = 0; i < 10; i++)
            Assert.Contains(int.Parse(await Master.GetOnNewConnectionAsync(mica)), after);
        Assert.Single(Master.LinesWith(mica, "Listening at:"));

        await Master.StopAndCheckAsync(mica);
        Assert.False(File.Exists(pidFile), "PID file left after the stop");
    }

    [Fact]
    public async Task Sigttin_adds_a_worker_and_sigttou_removes_one_but_never_the_last()
    {
        await using var mica = await Master.StartAsync(1);
        await mica.WaitForChildCountAsync(1);

        foreach (var wanted in new[] { 2, 3 })
        {
            var mark = mica.Mark();
            mica.Signal(Libc.SIGTTIN);
            await mica.WaitForStderrAsync($"Received SIGTTIN: adding a worker ({wanted} wanted)", after: mark);
            await mica.WaitForReadyWorkersAsync(1, after: mark);
            var children = await mica.WaitForChildCountAsync(wanted);
            Assert.Equal(mica.SpawnedWorkers.Where(w => w.IsAlive).Select(w => w.Pid).Order(), children.Order());
        }
        Assert.Equal([1, 2, 3], mica.SpawnedWorkers.Select(w => w.Id).Order());
        Assert.Equal("ok", await Master.GetOnNewConnectionAsync(mica, "/"));

        foreach (var wanted in new[] { 2, 1 })
        {
            var mark = mica.Mark();
            mica.Signal(Libc.SIGTTOU);
            var removing = await mica.WaitForStderrAsync("Received SIGTTOU: removing worker-", after: mark);
            Assert.Contains($"({wanted} wanted)", removing.Text);
            var removed = mica.SpawnedWorkers.Single(w => removing.Text.Contains($"removing worker-{w.Id} (pid {w.Pid})", StringComparison.Ordinal));
            await mica.WaitForStderrAsync($"worker-{removed.Id} (pid {removed.Pid}) stopped", TimeSpan.FromSeconds(20), mark);
            await mica.WaitForChildCountAsync(wanted);
            Assert.False(removed.IsAlive);
        }

        {
            var mark = mica.Mark();
            var last = await mica.WaitForChildCountAsync(1);
            mica.Signal(Libc.SIGTTOU);
            await mica.WaitForStderrAsync("Received SIGTTOU: keeping the last worker", after: mark);
            Assert.Equal(last, await mica.WaitForChildCountAsync(1));
            Assert.DoesNotContain(mica.Lines.Where(l => l.Index > mark), l => l.Text.Contains("Stopping worker-", StringComparison.Ordinal));
            Assert.Equal(last[0].ToString(), await Master.GetOnNewConnectionAsync(mica));
        }
        await Master.StopAndCheckAsync(mica);
    }

    [Theory]
    [InlineData("myapp", "myapp", "myapp-w")]
    [InlineData("averyveryverylongname", "averyveryverylo", "averyveryver-w")]
    public async Task Process_name_names_the_master_and_each_worker(string name, string masterComm, string workerPrefix)
    {
        await using var mica = await Master.StartAsync(2, ["--process-name", name]);
        Assert.Equal(masterComm, Master.Comm(mica.Pid));
        foreach (var worker in mica.SpawnedWorkers)
            Assert.Equal($"{workerPrefix}{worker.Id}", Master.Comm(worker.Pid));
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>Zero failed requests while 5 SIGHUPs replace every worker, new connection per request.</summary>
public sealed class RollingRestartNewConnectionTests(ITestOutputHelper output)
{
    [Fact]
    public Task Five_sighups_under_load_fail_no_request_with_a_new_connection_per_request() =>
        RollingRestart.RunAsync(keepAlive: false, output);
}

/// <summary>Zero failed requests while 5 SIGHUPs replace every worker, keep-alive connections.</summary>
public sealed class RollingRestartKeepAliveTests(ITestOutputHelper output)
{
    [Fact]
    public Task Five_sighups_under_load_fail_no_request_on_keep_alive_connections() =>
        RollingRestart.RunAsync(keepAlive: true, output);
}

internal static class RollingRestart
{
    public static async Task RunAsync(bool keepAlive, ITestOutputHelper output)
    {
        await using var mica = await Master.StartAsync(2);
        await using var load = LoadGenerator.Start(mica, concurrency: 8, keepAlive);
        await load.WaitForMoreSuccessesAsync(100);

        for (var reload = 1; reload <= 5; reload++)
        {
            var old = await mica.WaitForChildCountAsync(2);
            var mark = mica.Mark();
            mica.Signal(Libc.SIGHUP);
            foreach (var pid in old)
                await mica.WaitForLineAsync(l => l.Text.Contains($"(pid {pid}) stopped", StringComparison.Ordinal), TimeSpan.FromSeconds(30), mark);
            // The new workers serve before the next reload.
            await load.WaitForMoreSuccessesAsync(100);
        }
        await load.StopAsync();
        output.WriteLine(load.Summary());

        var replaced = mica.SpawnedWorkers.Count;
        Assert.True(replaced == 12, $"expected 2 + 5 x 2 workers spawned, saw {replaced}\n{mica.Dump()}");
        var log = load.Failed == 0 ? "" : MicaProcess.SaveLog(mica, keepAlive ? "rolling-restart-keep-alive" : "rolling-restart-new-connections");
        Assert.True(load.Failed == 0, $"{load.Failed} failed request(s) during 5 rolling restarts (full log: {log}). {load.Summary()}\n"
            + string.Join('\n', mica.StderrLines.Where(l => l.Contains("Stopping", StringComparison.Ordinal) || l.Contains("stopped", StringComparison.Ordinal)
                || l.Contains("ready", StringComparison.Ordinal) || l.Contains("WARNING", StringComparison.Ordinal) || l.Contains("ERROR", StringComparison.Ordinal))));
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>A temporary directory under /tmp, removed on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    private readonly DirectoryInfo _dir = Master.TempDir();
    public string Path => _dir.FullName;

    public void Dispose()
    {
        try { _dir.Delete(recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
