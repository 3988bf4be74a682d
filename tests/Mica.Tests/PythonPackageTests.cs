using System.Text.RegularExpressions;
using Mica.Cli;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The wheel (scripts/build-wheel) installed into a fresh virtualenv: the `mica` command and
/// `python -m mica` serve with that virtualenv's Python, and the Python API (`from mica import Mica`,
/// and `from granian import Granian` through the opt-in shim) runs the server, forwards signals and
/// calls its hooks in Granian's order.
/// </summary>
public sealed partial class PythonPackageTests
{
    private static string ExamplesDir => Path.Combine(MicaProcess.RepoRoot, "examples");

    /// <summary>As a user's shell would be: the virtualenv neither activated nor on PATH.</summary>
    private static Dictionary<string, string?> NotActivated => new() { ["VIRTUAL_ENV"] = null, ["PYTHONPATH"] = null };

    private static async Task<MicaProcess> ReadyAsync(MicaProcess mica)
    {
        try
        {
            await mica.WaitReadyAsync();
            return mica;
        }
        catch
        {
            await mica.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Venv_mica_command_serves_the_example_app_with_the_venv_python()
    {
        var venv = await PythonWheel.VenvAsync();
        await using var mica = await ReadyAsync(MicaProcess.Start(
            [Path.Combine(venv, "bin", "mica"), "--port", "0", "--working-dir", ExamplesDir, "app:app"], NotActivated));

        using (var client = mica.CreateClient())
            Assert.Equal("Hello from Mica!\n", await client.GetStringAsync("/"));
        var python = mica.StderrLines.Single(l => l.Contains("[INFO] Python 3.", StringComparison.Ordinal));
        Assert.Contains($"({venv}/bin/python", python);
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Python_m_mica_becomes_the_server_and_serves_with_the_venv_packages()
    {
        var venv = await PythonWheel.VenvAsync();
        await using var mica = await ReadyAsync(MicaProcess.Start(
            [Path.Combine(venv, "bin", "python"), "-m", "mica", "--port", "0", "--working-dir", MicaProcess.AppsDir, "venv_app:app"],
            NotActivated));

        using (var client = mica.CreateClient())
        {
            var served = Json.Parse(await client.GetStringAsync("/"));
            Assert.Equal(venv, served.GetProperty("prefix").GetString());
            // The worker's `mica` is the installed package (its API too), with mica.rsgi added.
            Assert.StartsWith(venv + "/lib/", served.GetProperty("mica").GetString());
            Assert.True(served.GetProperty("api").GetBoolean());
            Assert.True(served.GetProperty("rsgi").GetBoolean());
        }
        // exec: the process started is the master itself (its log lines carry its PID).
        var starting = mica.StderrLines.First(l => l.Contains("Starting Mica", StringComparison.Ordinal));
        Assert.Contains($"[master:{mica.Pid}]", starting);
        Assert.Equal(0, await mica.StopAsync());
    }

    [Theory]
    [InlineData("mica")]
    [InlineData("granian")]
    public async Task Python_api_serves_reloads_on_sighup_stops_on_sigterm_and_calls_hooks_in_order(string api)
    {
        var venv = await PythonWheel.VenvAsync(granian: api == "granian");
        await using var mica = await ReadyAsync(MicaProcess.Start(
            [Path.Combine(venv, "bin", "python"), Path.Combine(MicaProcess.AppsDir, "api_serve.py"), api, "starlette_app:app", MicaProcess.AppsDir],
            NotActivated));
        if (api == "granian")
            Assert.Contains(mica.StderrLines, l => l.StartsWith($"API granian from {venv}/lib/", StringComparison.Ordinal) && l.Contains("/mica_granian/granian/"));

        using var client = mica.CreateClient();
        Assert.Contains("starlette", await client.GetStringAsync("/json"));
        var firstWorker = mica.WorkerPid;

        var mark = mica.Mark();
        mica.Signal(Libc.SIGHUP);
        await mica.WaitForStderrAsync("HOOK reload", after: mark);
        await mica.WaitForLineAsync(l => l.Text.Contains($"(pid {firstWorker}) stopped", StringComparison.Ordinal), TimeSpan.FromSeconds(30), mark);
        Assert.Contains("starlette", await client.GetStringAsync("/json"));

        mica.Signal(Libc.SIGTERM);
        Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        await mica.AssertNoOrphansAsync();

        // Granian's points: startup once bound and before the first worker, reload before the
        // replacement, shutdown once the workers stopped; each waited for by the server.
        Assert.Equal(
            ["Starting Mica", "HOOK startup", "Spawned worker", "Received SIGHUP", "HOOK reload", "Spawned worker",
             "Received SIGTERM", "HOOK shutdown", "Shutdown complete", "SERVE RETURNED"],
            Events(mica));
    }

    [Fact]
    public async Task Python_api_runs_the_reload_hooks_when_a_file_change_reloads()
    {
        var venv = await PythonWheel.VenvAsync();
        var watched = Master.TempDir();
        try
        {
            await using var mica = await ReadyAsync(MicaProcess.Start(
                [Path.Combine(venv, "bin", "python"), Path.Combine(MicaProcess.AppsDir, "api_serve.py"), "mica", "hello:app", MicaProcess.AppsDir, watched.FullName],
                NotActivated));
            var mark = mica.Mark();
            File.WriteAllText(Path.Combine(watched.FullName, "changed.py"), "x = 1\n");
            await mica.WaitForStderrAsync("HOOK reload", ReloadProject.ChangeTimeout, after: mark);
            await mica.WaitForLineAsync(l => l.Index > mark && l.Text.EndsWith(" ready", StringComparison.Ordinal), ReloadProject.WorkerTimeout, mark);
            Assert.Equal(0, await mica.StopAsync());
            Assert.Equal(
                ["Starting Mica", "HOOK startup", "Spawned worker", "Changes detected", "HOOK reload", "Spawned worker",
                 "Received SIGINT", "HOOK shutdown", "Shutdown complete", "SERVE RETURNED"],
                Events(mica));
        }
        finally
        {
            watched.Delete(recursive: true);
        }
    }

    /// <summary>The hook lines and the server's lines they are ordered against, in the order written.</summary>
    private static List<string> Events(MicaProcess mica) =>
        [.. mica.StderrLines.Select(l => EventPattern().Match(l)).Where(m => m.Success).Select(m => m.Value)];

    [Fact]
    public async Task Granian_shim_gives_way_to_a_real_granian_found_on_the_path()
    {
        var venv = await PythonWheel.VenvAsync(granian: true);
        var python = Path.Combine(venv, "bin", "python");
        const string where = "import granian; print(granian.__file__)";
        var shim = Tool.Ok(await Tool.RunAsync(python, ["-c", where])).Stdout.Trim();
        Assert.Equal($"{venv}/lib/python3.11/site-packages/mica_granian/granian/__init__.py", shim);

        var dir = Master.TempDir();
        try
        {
            var real = Directory.CreateDirectory(Path.Combine(dir.FullName, "granian"));
            File.WriteAllText(Path.Combine(real.FullName, "__init__.py"), "");
            var found = Tool.Ok(await Tool.RunAsync("/usr/bin/env", [$"PYTHONPATH={dir.FullName}", python, "-c", where])).Stdout.Trim();
            Assert.Equal(Path.Combine(real.FullName, "__init__.py"), found);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Python_api_maps_every_option_of_the_command_line_onto_an_argument()
    {
        // The API's tables, as `argument option` lines, and whether each argument is a parameter of Mica().
        const string script = """
            import inspect
            from mica.server import HTTP1_OPTIONS, HTTP2_OPTIONS, OPTIONS, Mica
            parameters = inspect.signature(Mica).parameters
            for argument, option in OPTIONS:
                print(argument, option, argument in parameters)
            for argument, option in HTTP1_OPTIONS + HTTP2_OPTIONS:
                print(argument, option, True)
            """;
        var run = Tool.Ok(await Tool.RunAsync("/usr/bin/env",
            [$"PYTHONPATH={Path.Combine(MicaProcess.RepoRoot, "python")}", MicaProcess.Python, "-c", script]));
        var rows = run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ')).ToList();
        Assert.All(rows, r => Assert.True(r[2] == "True", $"{r[0]} is not a parameter of Mica()"));
        var mapped = rows.Select(r => r[1]).ToHashSet();
        Assert.All(new OptionTable().Entries, e => Assert.True(mapped.Contains(e.Option.Name), $"{e.Option.Name} has no Python API argument"));
    }

    [GeneratedRegex("HOOK (startup|reload|shutdown)|Starting Mica|Spawned worker|Changes detected|Received SIG(HUP|TERM|INT)|Shutdown complete|SERVE RETURNED")]
    private static partial Regex EventPattern();
}
