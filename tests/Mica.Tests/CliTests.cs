using System.Net;
using System.Net.Sockets;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>The command line: load failures (exit 1), usage errors (exit 2), --version, --help, options.</summary>
public sealed class CliTests
{
    private sealed record Run(int ExitCode, IReadOnlyList<string> Stdout, IReadOnlyList<string> Stderr, MicaProcess Process);

    /// <summary>Runs <c>./mica ARGS</c> (exactly these) to completion, bounded.</summary>
    private static async Task<Run> RunAsync(string[] args, IDictionary<string, string?>? environment = null)
    {
        await using var mica = await MicaProcess.LaunchAsync(args, environment, raw: true);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return new Run(exitCode, mica.StdoutLines, mica.ServerStderrLines, mica);
    }

    private static string[] WithApp(params string[] args) => ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, .. args];

    private static void AssertUsageError(Run run, string? mentions = null)
    {
        var stderr = string.Join('\n', run.Stderr);
        Assert.True(run.ExitCode == 2, $"exit code {run.ExitCode}, expected 2; stderr:\n{stderr}");
        Assert.True(run.Stderr.Count == 1, $"expected exactly one line on stderr, got {run.Stderr.Count}:\n{stderr}");
        Assert.StartsWith("mica: error:", run.Stderr[0]);
        if (mentions is not null) Assert.Contains(mentions, run.Stderr[0]);
        Assert.Empty(run.Stdout);
    }

    /// <summary>Exit 1 after a load failure: exactly one ERROR line, which contains every <paramref name="mentions"/>.</summary>
    private static string AssertLoadFailure(Run run, params string[] mentions)
    {
        var stderr = string.Join('\n', run.Stderr);
        Assert.True(run.ExitCode == 1, $"exit code {run.ExitCode}, expected 1; stderr:\n{stderr}");
        var errors = run.Stderr.Where(l => l.Contains("[ERROR]", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, $"expected one ERROR line, got {errors.Count}:\n{stderr}");
        Assert.Contains("failed to start (load)", errors[0]);
        foreach (var m in mentions) Assert.Contains(m, errors[0]);
        Assert.DoesNotContain(run.Stderr, l => l.Contains(") ready", StringComparison.Ordinal));
        return errors[0];
    }

    // ------------------------------------------------------------------ load failures: exit 1

    [Fact]
    public async Task Unimportable_module_exits_1_with_one_line_naming_it()
    {
        var run = await RunAsync(["--port", "0", .. WithApp("no_such_module_xyz:app")]);
        AssertLoadFailure(run, "no_such_module_xyz");
        Assert.DoesNotContain(run.Stderr, l => l.Contains("Traceback", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Missing_attribute_exits_1_naming_it()
    {
        var run = await RunAsync(["--port", "0", .. WithApp("hello:no_such_attribute")]);
        AssertLoadFailure(run, "no_such_attribute", "hello");
    }

    [Fact]
    public async Task App_that_is_not_callable_exits_1()
    {
        var run = await RunAsync(["--port", "0", .. WithApp("not_callable:app")]);
        AssertLoadFailure(run, "not callable");
    }

    [Fact]
    public async Task Syntax_error_in_the_module_exits_1_with_SyntaxError()
    {
        var run = await RunAsync(["--port", "0", .. WithApp("syntax_error:app")]);
        AssertLoadFailure(run, "syntax_error", "SyntaxError");
        Assert.Contains(run.Stderr, l => l.Contains("syntax_error.py", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Import_error_inside_the_app_exits_1_with_its_traceback()
    {
        var run = await RunAsync(["--port", "0", .. WithApp("import_error_app:app")]);
        AssertLoadFailure(run, "import_error_app", "definitely_missing_dependency_xyz");
        Assert.Contains(run.Stderr, l => l.Contains("Traceback", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Factory_target_without_factory_flag_exits_1()
    {
        var run = await RunAsync(["--port", "0", .. WithApp("factory_app:create_app")]);
        AssertLoadFailure(run, "--interface");
    }

    [Fact]
    public async Task Port_in_use_exits_1()
    {
        using var blocker = new TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        var port = ((IPEndPoint)blocker.LocalEndpoint).Port;
        var run = await RunAsync(["--port", port.ToString(), .. WithApp("hello:app")]);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains(run.Stderr, l => l.Contains("[ERROR]", StringComparison.Ordinal) && l.Contains(port.ToString(), StringComparison.Ordinal));
    }

    // ------------------------------------------------------------------ usage errors: exit 2

    [Theory]
    [InlineData("--port", "abc")]
    [InlineData("--port", "70000")]
    [InlineData("--port", "-1")]
    [InlineData("--interface", "nope")]
    [InlineData("--loop", "nope")]
    [InlineData("--loop", "rloop")]
    [InlineData("--backlog", "1")]
    [InlineData("--http1-header-read-timeout", "0")]
    [InlineData("--http1-header-read-timeout", "abc")]
    [InlineData("--log-level", "loud")]
    [InlineData("--workers-kill-timeout", "abc")]
    [InlineData("--workers-kill-timeout", "0")]
    [InlineData("--workers-kill-timeout", "1h1s")]
    [InlineData("--workers-kill-timeout", "99999999999999999999s")]
    [InlineData("--working-dir", "/no/such/directory")]
    [InlineData("--workers", "0")]
    [InlineData("--workers", "two")]
    [InlineData("--workers-max-rss", "0")]
    [InlineData("--respawn-interval", "-1")]
    [InlineData("--respawn-interval", "abc")]
    [InlineData("--rss-sample-interval", "0")]
    [InlineData("--rss-samples", "0")]
    [InlineData("--forwarded-allow-ips", "10.0.0.1/8")]
    [InlineData("--forwarded-allow-ips", "10.0.0.0/33")]
    [InlineData("--forwarded-allow-ips", "127.0.0.1,localhost")]
    [InlineData("--forwarded-allow-ips", "127.1")]
    [InlineData("--limit-request-line", "100")]
    [InlineData("--limit-request-fields", "0")]
    [InlineData("--limit-request-fields-size", "32k")]
    [InlineData("--limit-request-body", "-1")]
    [InlineData("--limit-request-body", "1.5")]
    [InlineData("--limit-concurrency", "0")]
    [InlineData("--timeout-keep-alive", "0")]
    [InlineData("--min-request-body-rate", "-1")]
    [InlineData("--min-response-rate", "fast")]
    public async Task Bad_option_value_exits_2_with_one_error_line(string option, string value)
    {
        var run = await RunAsync(["--python", MicaProcess.Python, option, value, "hello:app"]);
        AssertUsageError(run, option);
    }

    [Theory]
    [InlineData("--ssl-certificate", "cert.pem")]
    public async Task A_value_Mica_cannot_serve_exits_2_naming_the_option(params string[] option)
    {
        var run = await RunAsync([.. WithApp(option), "hello:app"]);
        AssertUsageError(run, option[0]);
    }

    [Fact]
    public async Task Unknown_option_exits_2()
    {
        var run = await RunAsync([.. WithApp("--no-such-option"), "hello:app"]);
        AssertUsageError(run, "--no-such-option");
    }

    [Fact]
    public async Task Missing_app_exits_2()
    {
        var run = await RunAsync(WithApp());
        AssertUsageError(run, "APP");
    }

    [Fact]
    public async Task Bad_MICA_PORT_exits_2()
    {
        var run = await RunAsync(WithApp("hello:app"), new Dictionary<string, string?> { ["MICA_PORT"] = "abc" });
        AssertUsageError(run, "--port");
    }

    [Fact]
    public async Task Bad_GRANIAN_PORT_exits_2()
    {
        var run = await RunAsync(WithApp("hello:app"), new Dictionary<string, string?> { ["GRANIAN_PORT"] = "abc" });
        AssertUsageError(run, "--port");
    }

    [Fact]
    public async Task Bad_boolean_in_environment_exits_2_naming_the_variable()
    {
        var run = await RunAsync(WithApp("hello:app"), new Dictionary<string, string?> { ["MICA_HTTP1_KEEP_ALIVE"] = "maybe" });
        AssertUsageError(run, "MICA_HTTP1_KEEP_ALIVE");
    }

    [Theory]
    [InlineData("MICA_FORWARDED_ALLOW_IPS")]
    [InlineData("GRANIAN_FORWARDED_ALLOW_IPS")]
    [InlineData("FORWARDED_ALLOW_IPS")]
    public async Task Bad_forwarded_allow_ips_in_the_environment_exits_2(string variable)
    {
        var run = await RunAsync(WithApp("hello:app"), new Dictionary<string, string?> { [variable] = "10.0.0.1/8" });
        AssertUsageError(run, "--forwarded-allow-ips");
        Assert.Contains("10.0.0.0/8", run.Stderr[0]);
    }

    [Fact]
    public async Task A_value_Mica_cannot_serve_from_the_environment_exits_2()
    {
        var run = await RunAsync(WithApp("hello:app"), new Dictionary<string, string?> { ["GRANIAN_LOOP"] = "rloop" });
        AssertUsageError(run, "--loop");
    }

    // ------------------------------------------------------------------ --version, --help

    [Fact]
    public async Task Version_prints_mica_and_the_version()
    {
        var run = await RunAsync(["--version"]);
        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"^mica \d+\.\d+\.\d+$", Assert.Single(run.Stdout));
        Assert.Empty(run.Stderr);
    }

    [Fact]
    public async Task Help_exits_0_and_lists_the_options()
    {
        var run = await RunAsync(["--help"]);
        Assert.Equal(0, run.ExitCode);
        var help = string.Join('\n', run.Stdout);
        Assert.StartsWith("Usage: mica [OPTIONS] APP", help);
        // Every option, in Granian's order under its section, with its variable (the help wraps long lines).
        var unwrapped = System.Text.RegularExpressions.Regex.Replace(help, @"\n {30,}", " ");
        var position = 0;
        foreach (var entry in new Mica.Cli.OptionTable().Entries)
        {
            var heading = unwrapped.IndexOf($"\n{entry.Section}:\n", StringComparison.Ordinal);
            Assert.True(heading >= 0, $"no section {entry.Section}\n{help}");
            var names = entry.Negation is { } negation ? $"  {entry.Option.Name} / {negation.Name} " : $"  {entry.Option.Name} ";
            var at = unwrapped.IndexOf(names, heading, StringComparison.Ordinal);
            Assert.True(at >= position, $"{entry.Option.Name} is missing or out of order\n{help}");
            var line = unwrapped[at..unwrapped.IndexOf('\n', at)];
            Assert.Contains($"env var: MICA_{entry.EnvName}]", line);
            position = at;
        }
        Assert.Contains("  --port INTEGER [0<=x<=65535]    Port to bind to (0: any free port)  [default: 8000; env var: MICA_PORT]", help);
        Assert.Contains("  --ws / --no-ws ", help);
        Assert.Empty(run.Stderr);
    }
}

/// <summary>Options that need a running server to be observed.</summary>
public sealed class ServeOptionTests
{
    [Fact]
    public async Task No_log_serves_and_writes_nothing_even_for_an_app_exception()
    {
        int port;
        using (var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        }
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", port.ToString(), "--no-log", "raw_app:app"], raw: true);
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        HttpResponseMessage? failed = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                failed = await client.GetAsync("/raise-before-start?key=nolog");
                break;
            }
            catch (HttpRequestException)
            {
                await Task.Delay(50);
            }
        }
        Assert.NotNull(failed);
        Assert.Equal(System.Net.HttpStatusCode.InternalServerError, failed.StatusCode);
        Assert.Equal(0, await mica.StopAsync());
        Assert.Empty(mica.ServerStderrLines);
    }

    [Fact]
    public async Task Factory_flag_calls_the_factory()
    {
        await using var mica = await MicaProcess.StartAsync("factory_app:create_app", ["--factory"]);
        using var client = mica.CreateClient();
        Assert.Equal("built by factory", await client.GetStringAsync("/"));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Target_without_attribute_defaults_to_app_and_asyncio_loop_is_used_when_asked()
    {
        await using var mica = await MicaProcess.StartAsync("hello", ["--loop", "asyncio"]);
        using var client = mica.CreateClient();
        Assert.Equal("Hello, world!", await client.GetStringAsync("/"));
        Assert.Contains(mica.StderrLines, l => l.Contains(", asyncio event loop,", StringComparison.Ordinal));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Explicit_host_and_port_are_used()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--host", "127.0.0.1", "--port", port.ToString(), "hello:app"], raw: true);
        await mica.WaitReadyAsync();
        Assert.Equal(port, mica.Port);
        Assert.Contains(mica.StderrLines, l => l.Contains($"Listening at: http://127.0.0.1:{port}", StringComparison.Ordinal));
        using var client = mica.CreateClient();
        Assert.Equal("Hello, world!", await client.GetStringAsync("/"));
        Assert.Equal(0, await mica.StopAsync());
    }
}

/// <summary>MICA_X and GRANIAN_X environment variables, observed through --interface (asgi calls lifespan, asginl does not).</summary>
public sealed class EnvironmentTests
{
    private static async Task<bool> LifespanCalledAsync(IDictionary<string, string?> environment, params string[] options)
    {
        await using var mica = await MicaProcess.StartAsync("lifespan_app:app", options, environment);
        using var client = mica.CreateClient();
        var result = await client.GetJsonAsync("/");
        Assert.Equal(0, await mica.StopAsync());
        return result.Bool("startup_called");
    }

    [Fact]
    public async Task GRANIAN_INTERFACE_is_honoured()
    {
        Assert.False(await LifespanCalledAsync(new Dictionary<string, string?> { ["GRANIAN_INTERFACE"] = "asginl" }));
    }

    [Fact]
    public async Task MICA_variable_wins_over_GRANIAN_variable()
    {
        Assert.True(await LifespanCalledAsync(new Dictionary<string, string?> { ["MICA_INTERFACE"] = "asgi", ["GRANIAN_INTERFACE"] = "asginl" }));
    }

    [Fact]
    public async Task Command_line_wins_over_the_environment()
    {
        Assert.True(await LifespanCalledAsync(new Dictionary<string, string?> { ["MICA_INTERFACE"] = "asginl" }, "--interface", "asgi"));
    }
}
