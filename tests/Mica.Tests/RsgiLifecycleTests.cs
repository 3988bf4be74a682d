using System.Net.WebSockets;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The RSGI app's life: <c>__rsgi_init__(loop)</c> before serving (loop not running, once per
/// worker), <c>__rsgi_del__(loop)</c> after (loop stopped), <c>__rsgi__</c> preferred over
/// <c>__call__</c>, --interface auto for a class and a plain function, and an init that fails.
/// </summary>
public sealed class RsgiLifecycleTests(RsgiAppServer fixture) : ProtoServerTests<RsgiAppServer>(fixture)
{
    [Fact]
    public async Task Init_ran_once_with_the_loop_not_running_and_requests_run_on_its_loop()
    {
        var response = await Rsgi.RawAsync(Mica, Rsgi.Request("GET", "/init"));
        Assert.True(response.Status == 200, response.BodyText);
        var init = Json.Parse(response.Body);
        Assert.True(init.Bool("called"));
        Assert.False(init.Bool("loop_running"));
        Assert.Equal("async init done", init.Str("async_result"));   // loop.run_until_complete works in it
        Assert.True(init.Bool("same_loop"), "requests do not run on the loop __rsgi_init__ was given");
        Assert.Equal(Mica.WorkerPid, init.Int("pid"));
        Assert.Single(Mica.StdoutLines, l => l.StartsWith("RSGI INIT ", StringComparison.Ordinal));
        Assert.Contains($"RSGI INIT {Mica.WorkerPid}", Mica.StdoutLines);
    }

    [Fact]
    public async Task Rsgi_is_preferred_over_call()
    {
        // App.__call__ is an ASGI-style callable that raises: no request may ever reach it.
        var response = await Rsgi.RawAsync(Mica, Rsgi.Request("GET", "/str"));
        Assert.Equal(200, response.Status);
        Assert.DoesNotContain(Mica.Lines, l => l.Text.Contains("__call__ used", StringComparison.Ordinal));
    }

}

/// <summary>Lifecycle behaviours that need a server of their own (stop, reload, several workers, failures).</summary>
public sealed class RsgiLifecycleProcessTests
{
    [Fact]
    public async Task Del_runs_on_graceful_stop_with_the_loop_stopped()
    {
        using var dir = new ScratchDir();
        var marker = dir.File("del.json");
        await using var mica = await MicaProcess.StartAsync(RsgiAppServer.AppName, ["--interface", "rsgi"],
            new Dictionary<string, string?> { ["RSGI_DEL_MARKER"] = marker });
        using (var client = mica.CreateClient())
            Assert.Equal("héllo wörld ✓", await client.GetStringAsync("/str"));
        var worker = mica.WorkerPid;
        Assert.False(File.Exists(marker), "__rsgi_del__ ran while serving");

        var exitCode = await mica.StopAsync();
        Assert.True(exitCode == 0, $"exit code {exitCode}\n{mica.Dump()}");
        await mica.WaitForStdoutAsync($"RSGI DEL {worker}", TimeSpan.FromSeconds(5));
        Assert.True(File.Exists(marker), $"no marker from __rsgi_del__\n{mica.Dump()}");
        var record = Json.Parse(await File.ReadAllTextAsync(marker));
        Assert.Equal(worker, record.Int("pid"));
        Assert.False(record.Bool("loop_running"));
        Assert.True(record.Bool("same_loop"), "__rsgi_del__ got another loop than __rsgi_init__");
        Assert.Equal("async cleanup done", record.Str("async_result"));
        Assert.Single(mica.StdoutLines, l => l.StartsWith("RSGI DEL", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_failing_del_is_logged_and_the_server_still_stops()
    {
        var tag = Keys.New();
        await using var mica = await MicaProcess.StartAsync(RsgiAppServer.AppName, ["--interface", "rsgi"],
            new Dictionary<string, string?> { ["RSGI_DEL_RAISE"] = tag });
        var mark = mica.Mark();
        var exitCode = await mica.StopAsync();
        var error = await mica.WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Contains("[ERROR]", StringComparison.Ordinal)
                                                       && l.Text.Contains("__rsgi_del__", StringComparison.Ordinal), TimeSpan.FromSeconds(5), mark);
        Assert.Contains($"rsgi del failed {tag}", error.Text);
        Assert.Contains(mica.StderrLines, l => l.Contains("rsgi_app.py", StringComparison.Ordinal) && l.Contains("__rsgi_del__", StringComparison.Ordinal));
        Assert.True(exitCode == 0, $"exit code {exitCode}\n{mica.Dump()}");
        await mica.AssertNoOrphansAsync();
    }

    [Fact]
    public async Task Init_and_del_run_once_in_each_worker()
    {
        await using var mica = await Master.StartAsync(2, ["--interface", "rsgi"], RsgiAppServer.AppName);
        var workers = mica.ReadyWorkers().Select(w => w.Pid).Order().ToArray();
        Assert.Equal(2, workers.Length);
        foreach (var pid in workers) await mica.WaitForStdoutAsync($"RSGI INIT {pid}", TimeSpan.FromSeconds(5));
        Assert.Equal(2, mica.StdoutLines.Count(l => l.StartsWith("RSGI INIT ", StringComparison.Ordinal)));

        await Master.StopAndCheckAsync(mica);
        foreach (var pid in workers) await mica.WaitForStdoutAsync($"RSGI DEL {pid}", TimeSpan.FromSeconds(5));
        Assert.Equal(2, mica.StdoutLines.Count(l => l.StartsWith("RSGI DEL ", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_reload_runs_del_in_the_old_worker_and_init_in_the_new_one()
    {
        await using var mica = await MicaProcess.StartAsync(RsgiAppServer.AppName, ["--interface", "rsgi"]);
        var old = mica.WorkerPid;
        var mark = mica.Mark();
        mica.Signal(Libc.SIGHUP);
        var replacement = (await mica.WaitForReadyWorkersAsync(1, TimeSpan.FromSeconds(30), mark)).Single().Pid;
        Assert.NotEqual(old, replacement);
        await mica.WaitForStdoutAsync($"RSGI INIT {replacement}", TimeSpan.FromSeconds(10), mark);
        await mica.WaitForStdoutAsync($"RSGI DEL {old}", TimeSpan.FromSeconds(20), mark);

        using var client = mica.CreateClient();
        var init = Json.Parse(await client.GetStringAsync("/init"));
        Assert.Equal(replacement, init.Int("pid"));
        Assert.True(init.Bool("same_loop"));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Interface_auto_detects_a_class_with_rsgi()
    {
        await using var mica = await MicaProcess.StartAsync(RsgiAppServer.AppName);
        await mica.WaitForStderrAsync("Interface detected: rsgi", TimeSpan.FromSeconds(5));
        Assert.Contains(mica.StderrLines, l => l.Contains("interface rsgi", StringComparison.Ordinal));
        using var client = mica.CreateClient();
        Assert.True(Json.Parse(await client.GetStringAsync("/init")).Bool("called"));
    }

    [Fact]
    public async Task Interface_auto_detects_a_plain_async_function_taking_scope_and_protocol()
    {
        await using var mica = await MicaProcess.StartAsync("rsgi_func_app:app");
        await mica.WaitForStderrAsync("Interface detected: rsgi", TimeSpan.FromSeconds(5));
        using var client = mica.CreateClient();
        using var response = await client.PostAsync("/some/path", new StringContent("a body"));
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("function", result.Str("via"));
        Assert.Equal(("http", "1.1", "/some/path", "a body"), (result.Str("proto"), result.Str("http_version"), result.Str("path"), result.Str("body")));

        using var ws = await Ws.ConnectAsync(mica, "/ws");
        Assert.Equal("function echo: hi", (await ws.EchoTextAsync("hi")).Text);
        var close = await ws.ReceiveMessageAsync();
        Assert.Equal((WebSocketMessageType.Close, (int?)1000), (close.Type, close.CloseCode));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task A_plain_function_with_interface_rsgi()
    {
        await using var mica = await MicaProcess.StartAsync("rsgi_func_app:app", ["--interface", "rsgi"]);
        Assert.DoesNotContain(mica.StderrLines, l => l.Contains("Interface detected", StringComparison.Ordinal));
        using var client = mica.CreateClient();
        Assert.Equal("function", Json.Parse(await client.GetStringAsync("/")).Str("via"));
    }

    [Fact]
    public async Task An_init_that_raises_stops_the_server_with_exit_code_1_and_says_why()
    {
        await using var mica = await MicaProcess.LaunchAsync(["rsgi_init_fail:app"]);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exitCode == 1, $"exit code {exitCode}\n{mica.Dump()}");
        var stderr = mica.ServerStderrLines;
        var error = stderr.SingleOrDefault(l => l.Contains("[ERROR]", StringComparison.Ordinal) && l.Contains("__rsgi_init__", StringComparison.Ordinal));
        Assert.True(error is not null, $"no ERROR line naming __rsgi_init__\n{mica.Dump()}");
        Assert.Contains("cache warm-up failed: redis.invalid:6379 unreachable", error);
        // The traceback points into the app.
        Assert.Contains(stderr, l => l.Contains("rsgi_init_fail.py", StringComparison.Ordinal) && l.Contains("_warm_cache", StringComparison.Ordinal));
        Assert.DoesNotContain(stderr, l => l.Contains(") ready", StringComparison.Ordinal));
        await mica.AssertNoOrphansAsync();
    }
}
