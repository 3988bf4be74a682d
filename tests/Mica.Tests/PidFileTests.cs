using System.Diagnostics;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>--pid-file: content, mode, atomic writes, lock, removal on every orderly exit.</summary>
public sealed class PidFileTests
{
    /// <summary>
    /// Runs <paramref name="step"/> in a tight loop on a thread of its own (not the thread pool, which
    /// may be slow to serve while many tests run) until <paramref name="stop"/>; completes after that.
    /// </summary>
    internal static Task Poll(CancellationToken stop, Action step)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                while (!stop.IsCancellationRequested) step();
                done.TrySetResult();
            }
            catch (Exception e) { done.TrySetException(e); }
        }) { IsBackground = true, Name = "poll" };
        thread.Start();
        return done.Task;
    }

    private static Task<MicaProcess> StartAsync(string pidFile, IDictionary<string, string?>? environment = null) =>
        Master.StartAsync(1, ["--pid-file", pidFile], environment: environment);

    [Fact]
    public async Task Pid_file_holds_the_master_pid_and_newline_with_mode_0644_under_umask_077()
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        await using var mica = await MicaProcess.LaunchViaAsync(["/bin/sh", "-c", "umask 077; exec \"$0\" \"$@\""],
            ["--python", MicaProcess.Python, "--port", "0", "--working-dir", MicaProcess.AppsDir, "--pid-file", pidFile, Master.PidApp], raw: true);
        await mica.WaitForReadyWorkersAsync(1);

        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(pidFile));
        Assert.Equal(["mica.pid"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
        // The umask did reach mica: what its workers create is private.
        Assert.Equal("0077", (await File.ReadAllTextAsync($"/proc/{mica.WorkerPid}/status")).Split('\n').Single(l => l.StartsWith("Umask:", StringComparison.Ordinal)).Split('\t')[1]);
        // The lock is the master's alone: no worker holds the PID file open.
        foreach (var worker in mica.SpawnedWorkers)
            foreach (var fd in Directory.GetFiles($"/proc/{worker.Pid}/fd"))
            {
                var target = new FileInfo(fd).LinkTarget;
                Assert.False(target is not null && target.Contains(dir.Path, StringComparison.Ordinal), $"worker {worker.Pid} holds {target} open (fd {Path.GetFileName(fd)})");
            }

        await Master.StopAndCheckAsync(mica);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task A_reader_polling_the_path_never_sees_it_empty_or_partial()
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        using var stop = new CancellationTokenSource();
        var seen = new Dictionary<string, int>();
        var absent = 0;
        var buffer = new byte[64];
        var reader = Poll(stop.Token, () =>
        {
            try
            {
                using var file = new FileStream(pidFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
                var n = file.Read(buffer);
                var text = System.Text.Encoding.ASCII.GetString(buffer, 0, n);
                seen[text] = seen.GetValueOrDefault(text) + 1;
            }
            catch (FileNotFoundException) { absent++; }
        });

        await using (var mica = await StartAsync(pidFile))
        {
            await Master.WaitUntilAsync(() => reader.IsCompleted || File.Exists(pidFile), "the PID file exists");
            await Master.StopAndCheckAsync(mica);
            await stop.CancelAsync();
            await reader.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.True(absent > 0, "the reader never saw the path absent: did it start before mica?");
            var contents = string.Join(", ", seen.Select(s => $"'{s.Key.Replace("\n", "\\n")}' x{s.Value}"));
            Assert.True(seen.Count == 1 && seen.ContainsKey($"{mica.Pid}\n"), $"expected only '{mica.Pid}\\n' (or no file), read: {contents}");
        }
    }

    [Fact]
    public async Task Second_instance_with_the_same_pid_file_exits_1_naming_the_first_pid_and_leaves_the_file_alone()
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        await using var first = await StartAsync(pidFile);
        var identity = Master.Identity(pidFile);
        var modified = File.GetLastWriteTimeUtc(pidFile);

        var clock = Stopwatch.StartNew();
        await using var second = await MicaProcess.LaunchAsync(["--pid-file", pidFile, Master.PidApp]);
        var exitCode = await second.WaitForExitAsync(TimeSpan.FromSeconds(10));
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{second.Dump()}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the second instance took {clock.Elapsed.TotalSeconds:0.0} s to give up");
        var error = Assert.Single(second.ServerStderrLines);
        Assert.Contains("[ERROR]", error);
        Assert.Contains(first.Pid.ToString(), error);
        Assert.Contains(pidFile, error);
        Assert.Empty(second.SpawnedWorkers);

        Assert.Equal($"{first.Pid}\n", await File.ReadAllTextAsync(pidFile));
        Assert.Equal(identity, Master.Identity(pidFile));
        Assert.Equal(modified, File.GetLastWriteTimeUtc(pidFile));
        Assert.Equal(["mica.pid"], Directory.GetFileSystemEntries(dir.Path).Select(Path.GetFileName));
        Assert.Equal(first.WorkerPid.ToString(), await Master.GetOnNewConnectionAsync(first));
        await Master.StopAndCheckAsync(first);
        Assert.False(File.Exists(pidFile));
    }

    [Fact]
    public async Task Stale_pid_file_of_a_dead_process_is_replaced_with_a_warning()
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        var dead = await Master.DeadPidAsync();
        await File.WriteAllTextAsync(pidFile, $"{dead}\n");

        await using var mica = await StartAsync(pidFile);
        var warning = Assert.Single(mica.StderrLines, l => l.Contains("[WARNING]", StringComparison.Ordinal));
        Assert.Contains("stale", warning);
        Assert.Contains(dead.ToString(), warning);
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));
        await Master.StopAndCheckAsync(mica);
        Assert.False(File.Exists(pidFile));
    }

    [Theory]
    [InlineData("hello")]
    [InlineData("")]
    public async Task Pid_file_without_a_pid_and_without_a_lock_holder_is_replaced_with_a_warning(string content)
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        await File.WriteAllTextAsync(pidFile, content);

        await using var mica = await StartAsync(pidFile);
        var warning = Assert.Single(mica.StderrLines, l => l.Contains("[WARNING]", StringComparison.Ordinal));
        Assert.Contains(pidFile, warning);
        if (content.Length > 0) Assert.Contains(content, warning);
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));
        await Master.StopAndCheckAsync(mica);
        Assert.False(File.Exists(pidFile));
    }

    [Theory]
    [InlineData(Libc.SIGTERM)]
    [InlineData(Libc.SIGINT)]
    [InlineData(Libc.SIGQUIT)]
    public async Task Pid_file_is_removed_on_a_stop_signal(int signal)
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        await using var mica = await StartAsync(pidFile);
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));

        mica.Signal(signal);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(20));
        Assert.True(exitCode == 0, $"exit code {exitCode}, expected 0\n{mica.Dump()}");
        Assert.False(File.Exists(pidFile), $"PID file left after signal {signal}");
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        await mica.AssertNoOrphansAsync();
    }
}

/// <summary>--pid-file: start-up failures, files that are not ours, a killed master, a missing directory.</summary>
public sealed class PidFileRecoveryTests
{
    [Theory]
    [InlineData("import_error_app:app")]
    [InlineData("lifespan_fail:app")]
    public async Task Pid_file_is_removed_when_start_up_fails_after_writing_it(string app)
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        var existed = false;
        using var stop = new CancellationTokenSource();
        var watch = PidFileTests.Poll(stop.Token, () =>
        {
            existed |= File.Exists(pidFile);
            Thread.Sleep(1);
        });
        await using var mica = await MicaProcess.LaunchAsync(["--pid-file", pidFile, app]);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        await stop.CancelAsync();
        await watch.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{mica.Dump()}");
        Assert.True(existed, "the PID file was never seen while mica was starting\n" + mica.Dump());
        Assert.False(File.Exists(pidFile), "PID file left after a start-up failure\n" + mica.Dump());
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
        await mica.AssertNoOrphansAsync();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Pid_file_that_no_longer_holds_our_pid_is_not_removed(bool replaceByRename)
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        await using var mica = await Master.StartAsync(1, ["--pid-file", pidFile]);
        var other = $"{mica.Pid + 100000}\n";
        if (replaceByRename)
        {
            var temporary = Path.Combine(dir.Path, "other.pid");
            await File.WriteAllTextAsync(temporary, other);
            File.Move(temporary, pidFile, overwrite: true);
        }
        else
        {
            await File.WriteAllTextAsync(pidFile, other);   // same file (inode), other content
        }

        await Master.StopAndCheckAsync(mica);
        Assert.True(File.Exists(pidFile), "mica removed a PID file that was not its own any more");
        Assert.Equal(other, await File.ReadAllTextAsync(pidFile));
    }

    [Fact]
    public async Task After_the_master_is_killed_its_workers_exit_and_the_next_start_recovers_the_stale_file()
    {
        using var dir = new TempDirectory();
        var pidFile = Path.Combine(dir.Path, "mica.pid");
        int killedPid;
        await using (var killed = await Master.StartAsync(2, ["--pid-file", pidFile]))
        {
            killedPid = killed.Pid;
            killed.Signal(Libc.SIGKILL);
            await killed.WaitForExitAsync(TimeSpan.FromSeconds(10));
            // Its workers notice the master is gone and stop on their own.
            await killed.AssertNoOrphansAsync(TimeSpan.FromSeconds(15));
            Assert.Equal($"{killedPid}\n", await File.ReadAllTextAsync(pidFile));
        }

        await using var next = await Master.StartAsync(1, ["--pid-file", pidFile]);
        var warning = Assert.Single(next.StderrLines, l => l.Contains("[WARNING]", StringComparison.Ordinal));
        Assert.Contains("stale", warning);
        Assert.Contains(killedPid.ToString(), warning);
        Assert.Equal($"{next.Pid}\n", await File.ReadAllTextAsync(pidFile));
        await Master.StopAndCheckAsync(next);
        Assert.False(File.Exists(pidFile));
    }

    [Fact]
    public async Task Pid_file_directory_deleted_while_running_gives_a_warning_at_exit_and_a_clean_stop()
    {
        using var dir = new TempDirectory();
        var runDir = Path.Combine(dir.Path, "run");
        Directory.CreateDirectory(runDir);
        var pidFile = Path.Combine(runDir, "mica.pid");
        await using var mica = await Master.StartAsync(1, ["--pid-file", pidFile]);
        Assert.True(File.Exists(pidFile));
        Directory.Delete(runDir, recursive: true);   // e.g. a tmpfiles cleaner emptying /run/app
        using (var client = mica.CreateClient())
            (await client.GetAsync("/")).EnsureSuccessStatusCode();
        await Master.StopAndCheckAsync(mica);
        Assert.Contains(mica.ServerStderrLines, l => l.Contains("[WARNING]", StringComparison.Ordinal) && l.Contains($"PID file directory of {pidFile} is gone", StringComparison.Ordinal));
        Assert.Contains(mica.ServerStderrLines, l => l.Contains("Shutdown complete", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pid_file_in_a_missing_directory_exits_1_with_one_error_line_and_creates_nothing()
    {
        using var dir = new TempDirectory();
        var missing = Path.Combine(dir.Path, "no", "such");
        var pidFile = Path.Combine(missing, "mica.pid");
        await using var mica = await MicaProcess.LaunchAsync(["--pid-file", pidFile, Master.PidApp]);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{mica.Dump()}");
        var line = Assert.Single(mica.ServerStderrLines);
        Assert.Contains("[ERROR]", line);
        Assert.Contains(pidFile, line);
        Assert.Empty(mica.StdoutLines);
        Assert.Empty(mica.SpawnedWorkers);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }
}
