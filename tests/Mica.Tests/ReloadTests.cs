using System.Diagnostics;
using Mica.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;
using static Mica.Tests.Infrastructure.ReloadProject;

namespace Mica.Tests;

/// <summary>
/// --reload --reload-ignore-worker-failure, one worker: each way of breaking the app gives a 503
/// page naming the error from the master (same PID, PID file, port), no restart storm, and the next
/// save that fixes the code serves the new code.
/// </summary>
public sealed class ReloadBreakFixTests
{
    [Theory]
    [InlineData(Breakage.SyntaxError)]
    [InlineData(Breakage.ImportError)]
    [InlineData(Breakage.RaiseAtImport)]
    [InlineData(Breakage.MissingAppAttribute)]
    [InlineData(Breakage.LifespanStartupFailed)]
    public Task Break_gives_503_naming_the_error_then_a_fix_serves_the_new_code(Breakage kind) => ReloadCycles.BreakAndFixAsync(kind, workers: 1);

    [Fact]
    public async Task App_broken_from_the_start_is_served_as_503_until_a_save_fixes_it()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        var broken = BrokenApp.For(Breakage.SyntaxError, project.MainPy);
        project.Write("main.py", broken.Source);
        await using var mica = await project.LaunchAsync();
        await mica.WaitForStderrAsync("failed to start", WorkerTimeout);
        await mica.WaitForStderrAsync("Waiting for a change to the sources", WorkerTimeout);
        await ReloadCycles.AssertErrorPagesAsync(mica, broken, "broken from the start");

        var mark = mica.Mark();
        project.Write("main.py", ReloadApps.Asgi("v2"));
        await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: mark);
        await mica.WaitForStderrAsync("The app is serving again", after: mark);
        Assert.Equal("v2", await GetOkAsync(mica));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Over_TLS_the_503_page_is_served_over_TLS_too()
    {
        var pki = await TestPki.GetAsync();
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        project.Write("main.py", BrokenApp.For(Breakage.SyntaxError, project.MainPy).Source);
        await using var mica = await project.LaunchAsync(options: ["--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey]);
        await mica.WaitForStderrAsync("Waiting for a change to the sources", WorkerTimeout);

        var page = await Curl.RunAsync("--cacert", pki.CaCert, $"https://127.0.0.1:{mica.Port}/");
        Assert.True(page.ExitCode == 0 && page.Status == 503, page.ToString());
        Assert.Contains("SyntaxError", page.BodyText);
        var plain = await Curl.RunAsync($"http://127.0.0.1:{mica.Port}/");
        Assert.NotEqual(503, plain.Status);   // plain HTTP on the TLS port gets no page

        var mark = mica.Mark();
        project.Write("main.py", ReloadApps.Asgi("v2"));
        await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: mark);
        var fixedPage = await Curl.RunAsync("--cacert", pki.CaCert, $"https://127.0.0.1:{mica.Port}/");
        Assert.True(fixedPage.Status == 200 && fixedPage.BodyText.Contains("v2"), fixedPage.ToString());
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Every_break_gets_the_503_page_not_only_the_first_one()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v0"));
        await using var mica = await project.StartAsync(1);
        var broken = BrokenApp.For(Breakage.RaiseAtImport, project.MainPy);
        for (var round = 1; round <= 3; round++)
        {
            var mark = mica.Mark();
            project.Write("main.py", broken.Source);
            await mica.WaitForStderrAsync("Waiting for a change to the sources", WorkerTimeout, after: mark);
            var response = await RequestAsync(mica);
            AssertErrorResponse(response, html: false, mica, $"break number {round}: GET /");
            Assert.Contains("boom at import time", response.BodyText);

            mark = mica.Mark();
            project.Write("main.py", ReloadApps.Asgi($"v{round}"));
            await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: mark);
            await mica.WaitForStderrAsync("The app is serving again", after: mark);
            Assert.Equal($"v{round}", await GetOkAsync(mica));
        }
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>The same break / fix cycles with --workers 2.</summary>
public sealed class ReloadBreakFixTwoWorkersTests
{
    [Theory]
    [InlineData(Breakage.SyntaxError)]
    [InlineData(Breakage.ImportError)]
    [InlineData(Breakage.RaiseAtImport)]
    [InlineData(Breakage.MissingAppAttribute)]
    [InlineData(Breakage.LifespanStartupFailed)]
    public Task Break_gives_503_naming_the_error_then_a_fix_serves_the_new_code(Breakage kind) => ReloadCycles.BreakAndFixAsync(kind, workers: 2);
}

/// <summary>Failures without --reload-ignore-worker-failure (exit 1), and crashes after ready with it (respawn).</summary>
public sealed class ReloadWorkerFailureTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Without_ignore_worker_failure_a_syntax_error_ends_the_server_with_exit_1_the_traceback_and_no_pid_file(int workers)
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        using var pidDir = new TempDirectory();
        var pidFile = Path.Combine(pidDir.Path, "mica.pid");
        await using var mica = await project.StartAsync(workers, ignoreWorkerFailure: false, options: ["--pid-file", pidFile]);
        Assert.Equal("v1", await GetOkAsync(mica));
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));

        var broken = BrokenApp.For(Breakage.SyntaxError, project.MainPy);
        var mark = mica.Mark();
        project.Write("main.py", broken.Source);
        await mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: mark);
        var exitCode = await mica.WaitForExitAsync(WorkerTimeout);
        Assert.True(exitCode == 1, $"exit code {exitCode}, expected 1\n{mica.Dump()}");

        var stderr = string.Join('\n', mica.StderrLines);
        Assert.Contains("failed to start (load)", stderr);
        Assert.Contains($"File \"{project.MainPy}\", line {broken.Location!.Value.Line}", stderr);
        Assert.Contains("SyntaxError: invalid syntax", stderr);
        Assert.DoesNotContain("The app is serving again", stderr);
        Assert.False(File.Exists(pidFile), $"PID file left after exit 1\n{mica.Dump()}");
        await mica.AssertNoOrphansAsync();
    }

    [Fact]
    public async Task Crash_after_ready_is_503_meanwhile_then_respawned_after_the_respawn_interval_even_twice_in_a_row()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, options: ["--respawn-interval", "0.5"]);
        var master = mica.Pid;

        // From now on a worker takes 2 s more to start: a wide window in which none serves.
        project.Write(ReloadApps.SlowStartFlag, "2");
        for (var round = 1; round <= 2; round++)
        {
            var victim = mica.ReadyWorkers().Last().Pid;
            var mark = mica.Mark();
            await Master.ExitWorkerAsync(mica, "/exit");
            var died = await mica.WaitForStderrAsync($"worker-1 (pid {victim}) died unexpectedly (exit code 3); respawning in 0.5 s", after: mark);
            // The master answers while no worker serves (0.5 s until the respawn, then 2 s of import).
            var clock = Stopwatch.StartNew();
            var during = await RequestAsync(mica);
            AssertErrorResponse(during, html: false, mica,
                $"round {round}: GET / sent at once after '{died.Text}', answered {clock.Elapsed.TotalSeconds:0.0} s later by {(during.Header("x-worker-pid") is { } p ? $"worker pid {p}" : "the master")}");
            Assert.Contains("died unexpectedly (exit code 3)", during.BodyText);

            var spawned = await mica.WaitForStderrAsync("Spawned worker-1", ChangeTimeout, after: mark);
            var (_, pid) = Assert.Single(await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: spawned.Index));
            Assert.NotEqual(victim, pid);
            await mica.WaitForStderrAsync("The app is serving again", after: mark);
            Assert.Equal("v1", await GetOkAsync(mica));
            Assert.Equal([pid], await mica.WaitForChildCountAsync(1));
        }
        Assert.Equal(master, mica.Pid);
        Assert.Empty(Master.LinesWith(mica, "crash loop"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Crash_of_one_of_two_workers_keeps_the_other_serving_and_is_respawned()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(2, options: ["--respawn-interval", "0.5"]);
        var mark = mica.Mark();
        await Master.ExitWorkerAsync(mica, "/exit");
        var died = await mica.WaitForStderrAsync("died unexpectedly (exit code 3); respawning in 0.5 s", after: mark);
        // The other worker is healthy: no error page, answers as before.
        Assert.Equal("v1", await GetOkAsync(mica));
        await mica.WaitForStderrAsync("Spawned worker-", ChangeTimeout, after: died.Index);
        await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: died.Index);
        await mica.WaitForChildCountAsync(2);
        Assert.Empty(Master.LinesWith(mica, "The app is serving again"));
        for (var i = 0; i < 4; i++) Assert.Equal("v1", await GetOkAsync(mica));
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>What triggers a reload and what does not; bursts; atomic saves; in-flight requests.</summary>
public sealed class ReloadWatchTests
{
    [Fact]
    public async Task Py_pyx_pyd_and_so_changes_each_trigger_a_reload_naming_the_file()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);
        foreach (var name in new[] { "helper.py", "fast.pyx", "native.pyd", "native.cpython-311-x86_64-linux-gnu.so" })
        {
            var path = project.PathOf(name);
            var (line, _) = await ReloadAsync(mica, () => File.WriteAllText(path, "# changed\n"));
            AssertChangeLineNames(line, path);
        }
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Default_ignores_editor_files_and_other_extensions_never_trigger()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        // Some ignored directories exist before the start, others are created after it.
        project.Write(".venv/lib/site.py", "x = 1\n");
        project.Write("node_modules/pkg/index.py", "x = 1\n");
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);

        var mark = mica.Mark();
        foreach (var relative in new[]
                 {
                     ".venv/lib/site.py", "node_modules/pkg/index.py",
                     "__pycache__/main.py", "__pycache__/main.cpython-311.pyc", ".git/hooks/pre-commit.py", ".hg/store.py",
                     "venv/lib/python3.11/site-packages/x.py", "sub/__pycache__/m.py", "mypkg.egg-info/setup.py",
                     "main.py~", ".#main.py", "#main.py#", ".main.py.swp", "main.py.swp",
                     "notes.txt", "data.json", "main.pyc", "README.md", "main.py.bak",
                 })
            project.Write(relative, "# not a reload\n");
        await AssertNoReloadAsync(mica, mark, "changes to ignored files");

        // The watcher still works, and only main.py is named (nothing ignored was queued).
        var (line, _) = await ReloadAsync(mica, () => File.AppendAllText(project.MainPy, "# touched\n"));
        AssertChangeLineNames(line, project.MainPy);
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Reload_ignore_dirs_patterns_and_paths_never_trigger_and_apply_below_the_root_only()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        project.Write("custom_dir_two/m.py", "x = 1\n");
        var ignoredFile = project.Write("local_settings.py", "x = 1\n");
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false, options:
        [
            "--reload-ignore-dirs", "custom_dir",
            "--reload-ignore-patterns", "^generated_",
            "--reload-ignore-patterns", @"^build\d+$",
            // Matches the project directory's own name (mica-test-XXXX): rules apply below the root, so no effect.
            "--reload-ignore-patterns", "^mica-test-",
            "--reload-ignore-paths", project.PathOf("static"),
            "--reload-ignore-paths", ignoredFile,
        ]);

        var mark = mica.Mark();
        project.Write("custom_dir/a.py", "x = 1\n");
        project.Write("pkg/custom_dir/b.py", "x = 1\n");
        project.Write("generated_models.py", "x = 1\n");
        project.Write("pkg2/generated_code/c.py", "x = 1\n");
        project.Write("build7/d.py", "x = 1\n");
        project.Write("static/e.py", "x = 1\n");
        project.Write("static/deeper/f.py", "x = 1\n");
        File.AppendAllText(ignoredFile, "# changed\n");
        await AssertNoReloadAsync(mica, mark, "changes matched by --reload-ignore-dirs/-patterns/-paths");

        // Names that only resemble the ignored ones do trigger (exact directory names, anchored patterns).
        var regenerated = project.PathOf("regenerated_models.py");
        var (line1, _) = await ReloadAsync(mica, () => File.WriteAllText(regenerated, "x = 2\n"));
        AssertChangeLineNames(line1, regenerated);
        var near = project.PathOf("custom_dir_two/m.py");
        var (line2, _) = await ReloadAsync(mica, () => File.WriteAllText(near, "x = 2\n"));
        AssertChangeLineNames(line2, near);
        var (line3, _) = await ReloadAsync(mica, () => File.AppendAllText(project.MainPy, "# touched\n"));
        AssertChangeLineNames(line3, project.MainPy);
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Reload_paths_limit_watching_to_the_directories_given()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        var util = project.Write("lib/util.py", "x = 1\n");
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false, options: ["--reload-paths", project.PathOf("lib")]);
        Assert.Single(Master.LinesWith(mica, $"Watching for changes in {project.PathOf("lib")}"));

        var mark = mica.Mark();
        project.Write("other.py", "x = 1\n");
        File.AppendAllText(project.MainPy, "# touched\n");
        await AssertNoReloadAsync(mica, mark, "changes outside --reload-paths");

        var (line, _) = await ReloadAsync(mica, () => File.AppendAllText(util, "y = 2\n"));
        AssertChangeLineNames(line, util);
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Reload_paths_naming_a_file_watch_that_file_only()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        var settings = project.Write("settings.py", "DEBUG = True\n");
        var namesake = project.Write("pkg/settings.py", "DEBUG = True\n");
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false, options: ["--reload-paths", settings]);

        var mark = mica.Mark();
        File.AppendAllText(namesake, "# same name, other directory\n");
        project.Write("other.py", "x = 1\n");
        File.AppendAllText(project.MainPy, "# touched\n");
        await AssertNoReloadAsync(mica, mark, $"changes to files other than {settings}");

        var (line, _) = await ReloadAsync(mica, () => File.AppendAllText(settings, "DEBUG = False\n"));
        AssertChangeLineNames(line, settings);
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task New_subdirectory_created_after_start_then_a_py_file_in_it_triggers_and_later_changes_too()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);
        var mark = mica.Mark();
        Directory.CreateDirectory(project.PathOf("newpkg/inner"));
        await AssertNoReloadAsync(mica, mark, "creating directories", TimeSpan.FromMilliseconds(500));

        var module = project.PathOf("newpkg/inner/mod.py");
        var (line, _) = await ReloadAsync(mica, () => File.WriteAllText(module, "x = 1\n"));
        AssertChangeLineNames(line, module);
        var (again, _) = await ReloadAsync(mica, () => File.AppendAllText(module, "y = 2\n"));
        AssertChangeLineNames(again, module);
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task New_subdirectory_created_together_with_its_py_file_triggers_a_reload()
    {
        // As `mkdir pkg && touch pkg/__init__.py`, `cp -r`, `git checkout` or `tar x` do: no pause
        // between the two. Five packages one after the other (each must reload), as a race may hide.
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);
        var missed = new List<string>();
        for (var i = 1; i <= 5; i++)
        {
            var module = project.PathOf($"freshpkg{i}/__init__.py");
            var mark = mica.Mark();
            Directory.CreateDirectory(project.PathOf($"freshpkg{i}"));
            File.WriteAllText(module, "x = 1\n");
            try
            {
                var line = await mica.WaitForStderrAsync("Changes detected in ", TimeSpan.FromSeconds(3), after: mark);
                AssertChangeLineNames(line.Text, module);
                await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: line.Index);
            }
            catch (TimeoutException)
            {
                missed.Add(module);
            }
        }
        Assert.True(missed.Count == 0, $"no reload within 3 s for {missed.Count} of 5 new directories created with their file: {string.Join(", ", missed)}\n{mica.Dump()}");
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Directory_of_py_files_moved_into_the_tree_triggers_a_reload()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        using var outside = new TempDirectory();
        var staged = Path.Combine(outside.Path, "movedpkg");
        Directory.CreateDirectory(staged);
        File.WriteAllText(Path.Combine(staged, "__init__.py"), "x = 1\n");
        File.WriteAllText(Path.Combine(staged, "models.py"), "y = 1\n");
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);
        var mark = mica.Mark();
        Directory.Move(staged, project.PathOf("movedpkg"));   // one rename(2), as `mv` does
        var line = await mica.WaitForStderrAsync("Changes detected in ", TimeSpan.FromSeconds(3), after: mark);
        await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: line.Index);
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Atomic_saves_and_delete_then_recreate_each_reload_once_and_serve_the_new_content()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);
        Assert.Equal("v1", await GetOkAsync(mica));

        // Write to a temporary file, then rename over main.py (most editors, black, ruff format).
        var mark = mica.Mark();
        var (line, _) = await ReloadAsync(mica, () =>
        {
            var temporary = project.PathOf(".main.py.tmp4711");
            File.WriteAllText(temporary, ReloadApps.Asgi("v2"));
            File.Move(temporary, project.MainPy, overwrite: true);
        });
        AssertChangeLineNames(line, project.MainPy);
        Assert.Equal("v2", await GetOkAsync(mica));
        Assert.Single(ChangeLines(mica, mark));

        // Delete, then create again.
        mark = mica.Mark();
        (line, _) = await ReloadAsync(mica, () =>
        {
            File.Delete(project.MainPy);
            File.WriteAllText(project.MainPy, ReloadApps.Asgi("v3"));
        });
        AssertChangeLineNames(line, project.MainPy);
        Assert.Equal("v3", await GetOkAsync(mica));
        Assert.Single(ChangeLines(mica, mark));

        // vim with writebackup: rename to main.py~, write main.py, delete main.py~.
        mark = mica.Mark();
        (line, _) = await ReloadAsync(mica, () =>
        {
            var backup = project.MainPy + "~";
            File.Move(project.MainPy, backup);
            File.WriteAllText(project.MainPy, ReloadApps.Asgi("v4"));
            File.Delete(backup);
        });
        AssertChangeLineNames(line, project.MainPy);
        Assert.Equal("v4", await GetOkAsync(mica));
        Assert.Single(ChangeLines(mica, mark));

        // The new main.py (a new inode) is still watched: an in-place write triggers too.
        (line, _) = await ReloadAsync(mica, () => File.WriteAllText(project.MainPy, ReloadApps.Asgi("v5")));
        AssertChangeLineNames(line, project.MainPy);
        Assert.Equal("v5", await GetOkAsync(mica));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Burst_of_200_new_py_files_gives_exactly_one_reload()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, ignoreWorkerFailure: false);
        var spawnedBefore = SpawnedCount(mica);
        var contents = Enumerable.Range(0, 200).Select(i => (Path: project.PathOf($"gen_{i:000}.py"), Bytes: System.Text.Encoding.UTF8.GetBytes($"N = {i}\n"))).ToList();

        var mark = mica.Mark();
        var clock = Stopwatch.StartNew();
        var maxGap = TimeSpan.Zero;
        var previous = TimeSpan.Zero;
        foreach (var (path, bytes) in contents)
        {
            File.WriteAllBytes(path, bytes);
            var now = clock.Elapsed;
            if (now - previous > maxGap) maxGap = now - previous;
            previous = now;
        }
        var took = clock.Elapsed;
        var line = await mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: mark);
        await mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: line.Index);
        await AssertNoReloadAsync(mica, line.Index, "a second reload after the 200-file burst");

        var timing = $"(writing took {took.TotalMilliseconds:0} ms, largest gap between two writes {maxGap.TotalMilliseconds:0} ms)";
        var lines = ChangeLines(mica, mark);
        Assert.True(lines.Count == 1, $"expected one reload, saw {lines.Count} {timing}: {string.Join(" | ", lines)}");
        Assert.True(lines[0].EndsWith(" and 199 more: reloading", StringComparison.Ordinal), $"expected 200 paths in the one reload {timing}: {lines[0]}");
        Assert.Equal(spawnedBefore + 1, SpawnedCount(mica));
        Assert.Single(await mica.WaitForChildCountAsync(1));
        await Master.StopAndCheckAsync(mica);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task In_flight_request_during_a_reload_completes_with_200(int workers)
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(workers, ignoreWorkerFailure: false);

        await using var connection = await RawConnection.ConnectAsync(mica);
        var mark = mica.Mark();
        await connection.SendAsync(RawConnection.Get("/sleep"));
        var sleeping = await mica.WaitForStdoutAsync("RELOADAPP SLEEPING", after: mark);
        var busyPid = int.Parse(sleeping.Text.Split(' ')[^1]);

        var change = mica.Mark();
        project.Write("main.py", ReloadApps.Asgi("v2"));
        await mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: change);
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200 && response.BodyText == "v1",
            $"in-flight request: {response.Status} {response.BodyText}, expected 200 v1\n{mica.Dump()}");
        Assert.Equal(busyPid.ToString(), response.Header("x-worker-pid"));

        await mica.WaitForReadyWorkersAsync(workers, WorkerTimeout, after: change);
        await mica.WaitForStderrAsync($"(pid {busyPid}) stopped", ChangeTimeout, after: change);
        Assert.Empty(Master.LinesWith(mica, $"(pid {busyPid}) stopped abnormally"));
        await WaitForBodyAsync(mica, "v2");
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>Many reloads in a row (no orphans, no descriptor leak) and the save → answer latency.</summary>
public sealed class ReloadEnduranceTests(ITestOutputHelper output)
{
    private const int Reloads = 50;

    [Fact]
    public async Task Fifty_reloads_leave_one_child_no_orphan_worker_and_no_fd_leak_in_the_master()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("r0"));
        await using var mica = await project.StartAsync(1);
        var clock = Stopwatch.StartNew();
        IReadOnlyList<(string Fd, string Target)> fdsAfter5 = [];
        var allFdsAfter5 = 0;
        for (var i = 1; i <= Reloads; i++)
        {
            var version = $"r{i}";
            await ReloadAsync(mica, () => project.Write("main.py", ReloadApps.Asgi(version)));
            if (i == 5 || i == Reloads)
            {
                await mica.WaitForChildCountAsync(1, TimeSpan.FromSeconds(15));
                Assert.Equal(version, await GetOkAsync(mica));
                if (i == 5)
                {
                    fdsAfter5 = await StableLeakableFdsAsync(mica.Pid);
                    allFdsAfter5 = Fds(mica.Pid).Count;
                }
            }
        }
        var elapsed = clock.Elapsed;
        var fdsAfter50 = await StableLeakableFdsAsync(mica.Pid);
        output.WriteLine($"{Reloads} reloads in {elapsed.TotalSeconds:0.0} s ({elapsed.TotalMilliseconds / Reloads:0} ms each); " +
                         $"master descriptors other than assemblies after 5: {fdsAfter5.Count}, after {Reloads}: {fdsAfter50.Count} " +
                         $"(all descriptors: {allFdsAfter5} and {Fds(mica.Pid).Count})");

        var children = await mica.WaitForChildCountAsync(1, TimeSpan.FromSeconds(15));
        var current = mica.ReadyWorkers().Last().Pid;
        Assert.Equal([current], children);
        Assert.Equal(Reloads + 1, mica.SpawnedWorkers.Count);
        var survivors = mica.SpawnedWorkers.Where(w => w.Pid != current && w.IsAlive).ToList();
        Assert.True(survivors.Count == 0, $"old workers still alive: {string.Join(", ", survivors.Select(w => $"{w.Pid} (ppid {MicaProcess.ReadStat(w.Pid)?.Ppid})"))}");
        Assert.True(Math.Abs(fdsAfter50.Count - fdsAfter5.Count) <= 2,
            $"master descriptors (assemblies aside) after 5 reloads: {fdsAfter5.Count}, after {Reloads}: {fdsAfter50.Count}\n" +
            $"after 5: {Describe(fdsAfter5)}\nafter {Reloads}: {Describe(fdsAfter50)}");
        Assert.Equal(Reloads, ChangeLines(mica).Count);
        Assert.Equal(Reloads, Master.LinesWith(mica, ") stopped").Count);
        Assert.Empty(Master.LinesWith(mica, "stopped abnormally"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Ten_reloads_with_two_workers_leave_exactly_two_children()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("r0"));
        await using var mica = await project.StartAsync(2);
        for (var i = 1; i <= 10; i++)
        {
            var version = $"r{i}";
            await ReloadAsync(mica, () => project.Write("main.py", ReloadApps.Asgi(version)), workers: 2);
        }
        var children = await mica.WaitForChildCountAsync(2, TimeSpan.FromSeconds(15));
        var latest = mica.SpawnedWorkers.TakeLast(2).Select(w => w.Pid).Order().ToList();
        Assert.Equal(latest, children.Order());
        Assert.Equal(22, mica.SpawnedWorkers.Count);
        Assert.DoesNotContain(mica.SpawnedWorkers.SkipLast(2), w => w.IsAlive);
        for (var i = 0; i < 4; i++) Assert.Equal("r10", await GetOkAsync(mica));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Save_of_a_fix_to_new_code_answering_median_of_10_for_starlette()
    {
        using var project = new ReloadProject(ReloadApps.Starlette("s0"));
        await using var mica = await project.StartAsync(1);
        Assert.Equal("s0", await GetOkAsync(mica));

        var total = new List<double>();
        var detect = new List<double>();
        var ready = new List<double>();
        for (var i = 1; i <= 10; i++)
        {
            // Break it (a syntax error) and wait until the master knows (the 503 page is tested elsewhere)...
            var mark = mica.Mark();
            project.Write("main.py", ReloadApps.Starlette("broken") + "value = = 1\n");
            await mica.WaitForStderrAsync("Waiting for a change to the sources", WorkerTimeout, after: mark);

            // ... then save the fix and poll until the new code answers.
            var version = $"s{i}";
            var fixSource = ReloadApps.Starlette(version);
            mark = mica.Mark();
            var clock = new Stopwatch();
            var changeSeen = mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: mark).ContinueWith(_ => clock.Elapsed, TaskScheduler.Default);
            var readySeen = mica.WaitForReadyWorkersAsync(1, WorkerTimeout, after: mark).ContinueWith(_ => clock.Elapsed, TaskScheduler.Default);
            clock.Start();
            project.Write("main.py", fixSource);
            await WaitForBodyAsync(mica, version);
            total.Add(clock.Elapsed.TotalMilliseconds);
            detect.Add((await changeSeen).TotalMilliseconds);
            ready.Add((await readySeen).TotalMilliseconds);
        }

        static double Median(List<double> values)
        {
            var sorted = values.Order().ToList();
            return (sorted[4] + sorted[5]) / 2;
        }
        output.WriteLine($"save of a fix -> new code answering (Starlette, 10 rounds): median {Median(total):0} ms, " +
                         $"min {total.Min():0} ms, max {total.Max():0} ms; all: {string.Join(", ", total.Select(t => t.ToString("0")))}");
        output.WriteLine($"  save -> 'Changes detected' line read: median {Median(detect):0} ms; save -> worker ready line read: median {Median(ready):0} ms");
        Assert.True(Median(total) < 5000, $"median save -> answer {Median(total):0} ms (all: {string.Join(", ", total.Select(t => t.ToString("0")))})");
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>The break / fix cycle shared by the one- and two-worker classes.</summary>
internal static class ReloadCycles
{
    public static async Task BreakAndFixAsync(Breakage kind, int workers)
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        using var pidDir = new TempDirectory();
        var pidFile = Path.Combine(pidDir.Path, "mica.pid");
        await using var mica = await project.StartAsync(workers, options: ["--pid-file", pidFile]);
        Assert.Equal("v1", await GetOkAsync(mica));
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));
        var pidFileIdentity = Master.Identity(pidFile);

        // Break it.
        var broken = BrokenApp.For(kind, project.MainPy);
        var mark = mica.Mark();
        project.Write("main.py", broken.Source);
        await mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: mark);
        await WaitForCountAsync(mica, "failed to start", workers, mark);
        await WaitForCountAsync(mica, "Waiting for a change to the sources", workers, mark);
        // A wrong or missing 503 page is reported at the end: the rest of the cycle is worth checking anyway.
        var problems = new List<string>();
        await Softly(problems, () => AssertErrorPagesAsync(mica, broken, $"{kind}, {workers} worker(s)"));

        // No restart storm: nothing is spawned until a watched file changes.
        await mica.WaitForChildCountAsync(0);
        var spawned = SpawnedCount(mica);
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.True(SpawnedCount(mica) == spawned, $"workers spawned while waiting for a change ({spawned} -> {SpawnedCount(mica)})\n{mica.Dump()}");
        Assert.Empty(mica.ChildPids());
        await Softly(problems, async () => AssertErrorResponse(await RequestAsync(mica), html: false, mica, "GET / 2 s later"));

        // The master stayed: same process, PID file, port.
        Assert.False(mica.HasExited, mica.Dump());
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));
        Assert.Equal(pidFileIdentity, Master.Identity(pidFile));

        // Fix it.
        mark = mica.Mark();
        project.Write("main.py", ReloadApps.Asgi("v2"));
        await mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: mark);
        await mica.WaitForReadyWorkersAsync(workers, WorkerTimeout, after: mark);
        await mica.WaitForStderrAsync("The app is serving again", after: mark);
        for (var i = 0; i < 2 * workers; i++) Assert.Equal("v2", await GetOkAsync(mica));
        var htmlNow = await RequestAsync(mica, "/", "GET", BrowserAccept);
        Assert.True(htmlNow.Status == 200 && htmlNow.BodyText == "v2", $"a browser after the fix: {htmlNow.Status} {htmlNow.BodyText}");
        Assert.Single(Master.LinesWith(mica, "The app is serving again"));
        Assert.Equal(workers, (await mica.WaitForChildCountAsync(workers)).Count);
        Assert.Equal($"{mica.Pid}\n", await File.ReadAllTextAsync(pidFile));

        await Master.StopAndCheckAsync(mica);
        Assert.False(File.Exists(pidFile), "PID file left after the stop");
        Assert.True(problems.Count == 0, $"the rest of the cycle passed, but:\n{string.Join("\n\n", problems)}");
    }

    private static async Task Softly(List<string> problems, Func<Task> check)
    {
        try { await check(); }
        catch (Xunit.Sdk.XunitException e) { problems.Add(e.Message); }
    }

    /// <summary>The 503 page in its two forms, and on every kind of request.</summary>
    public static async Task AssertErrorPagesAsync(MicaProcess mica, BrokenApp broken, string what)
    {
        // Plain text for clients that do not ask for HTML.
        var text = await RequestAsync(mica);
        AssertErrorResponse(text, html: false, mica, $"{what}: GET / (no Accept)");
        foreach (var name in broken.MustName)
            Assert.True(text.BodyText.Contains(name, StringComparison.Ordinal), $"{what}: text page does not name '{name}':\n{text.BodyText}");
        if (broken.Location is { } at)
            Assert.True(text.BodyText.Contains($"File \"{at.Path}\", line {at.Line}", StringComparison.Ordinal),
                $"{what}: text page lacks the traceback line 'File \"{at.Path}\", line {at.Line}':\n{text.BodyText}");

        // HTML for browsers.
        var html = await RequestAsync(mica, "/", "GET", BrowserAccept);
        AssertErrorResponse(html, html: true, mica, $"{what}: GET / (browser)");
        var page = Decoded(html);
        foreach (var name in broken.MustName)
            Assert.True(page.Contains(name, StringComparison.Ordinal), $"{what}: HTML page does not name '{name}':\n{html.BodyText}");
        if (broken.HtmlHeading is { } heading)
            Assert.True(page.Contains(heading, StringComparison.Ordinal), $"{what}: HTML page lacks '{heading}':\n{html.BodyText}");
        if (broken.Location is { Path: var path, Line: var number })
        {
            Assert.True(page.Contains($"{path}:{number}", StringComparison.Ordinal), $"{what}: HTML page lacks '{path}:{number}':\n{html.BodyText}");
            Assert.True(page.Contains($"File \"{path}\", line {number}", StringComparison.Ordinal), $"{what}: HTML page lacks the traceback:\n{html.BodyText}");
        }

        // Every request, whatever it is, gets the 503.
        var other = await RequestAsync(mica, "/api/items?id=3", "GET", "Accept: application/json");
        AssertErrorResponse(other, html: false, mica, $"{what}: GET /api/items (JSON)");
        var head = await RequestAsync(mica, "/", "HEAD");
        Assert.True(head.Status == 503, $"{what}: HEAD /: {head.Status}");

        await using (var post = await RawConnection.ConnectAsync(mica))
        {
            var body = new string('x', 200_000);
            await post.SendAsync($"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\n\r\n{body}");
            AssertErrorResponse(await post.ReadResponseAsync("POST"), html: false, mica, $"{what}: POST with a 200 kB body");
        }
        await using (var http10 = await RawConnection.ConnectAsync(mica))
        {
            await http10.SendAsync("GET / HTTP/1.0\r\n\r\n");
            AssertErrorResponse(await http10.ReadResponseAsync(), html: false, mica, $"{what}: HTTP/1.0 GET");
        }
        await using (var keepAlive = await RawConnection.ConnectAsync(mica))
        {
            await keepAlive.SendAsync(RawConnection.Get("/"));   // asks to keep the connection: it is closed anyway
            AssertErrorResponse(await keepAlive.ReadResponseAsync(), html: false, mica, $"{what}: keep-alive GET");
            Assert.True(await keepAlive.WaitClosedAsync(TimeSpan.FromSeconds(5)), $"{what}: the connection stayed open after the 503 (Connection: close)");
        }
        var concurrent = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => RequestAsync(mica, $"/c{i}")));
        Assert.All(concurrent, r => AssertErrorResponse(r, html: false, mica, $"{what}: one of 10 concurrent GETs"));
    }

    /// <summary>Waits for the <paramref name="count"/>-th stderr line containing <paramref name="text"/> after <paramref name="after"/>.</summary>
    public static Task<LogLine> WaitForCountAsync(MicaProcess mica, string text, int count, int after)
    {
        var seen = 0;
        return mica.WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Contains(text, StringComparison.Ordinal) && ++seen >= count,
            WorkerTimeout, after);
    }
}
