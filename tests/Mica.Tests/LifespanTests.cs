using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Lifespan startup and state, on one shared server (lifespan_app.py).</summary>
public sealed class LifespanTests(LifespanServer server) : ServerTests<LifespanServer>(server)
{
    [Fact]
    public async Task Startup_runs_before_serving_and_its_state_is_visible_in_requests()
    {
        await Mica.WaitForStdoutAsync("LIFESPAN STARTUP", TimeSpan.FromSeconds(1));
        var result = await Client.GetJsonAsync("/");
        Assert.True(result.Bool("startup_called"));
        Assert.True(result.Bool("has_state"));
        Assert.Equal("connected", result.GetProperty("state").Str("db"));
    }

    [Fact]
    public async Task Root_path_is_empty_without_url_path_prefix()
    {
        var result = await Client.GetJsonAsync("/anything");
        Assert.Equal("", result.Str("root_path"));
    }

    [Fact]
    public void Startup_runs_once()
    {
        Assert.Single(Mica.StdoutLines, l => l == "LIFESPAN STARTUP");
    }
}

/// <summary>Lifespan behaviours that need a server of their own (stop, failure, interface choice).</summary>
public sealed class LifespanProcessTests
{
    [Fact]
    public async Task Shutdown_runs_on_graceful_stop()
    {
        await using var mica = await MicaProcess.StartAsync("lifespan_app:app");
        using (var client = mica.CreateClient())
            Assert.True((await client.GetJsonAsync("/")).Bool("startup_called"));
        Assert.DoesNotContain("LIFESPAN SHUTDOWN", mica.StdoutLines);

        var exitCode = await mica.StopAsync();
        Assert.Equal(0, exitCode);
        await mica.WaitForStdoutAsync("LIFESPAN SHUTDOWN", TimeSpan.FromSeconds(5));
        Assert.Contains(mica.StderrLines, l => l.Contains("Shutdown complete", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Startup_failure_exits_1_with_the_message()
    {
        await using var mica = await MicaProcess.LaunchAsync(["lifespan_fail:app"]);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1, exitCode);
        var stderr = mica.ServerStderrLines;
        Assert.Contains(stderr, l => l.Contains("database unreachable at db.invalid:5432", StringComparison.Ordinal)
                                     && l.Contains("[ERROR]", StringComparison.Ordinal));
        Assert.Contains(stderr, l => l.Contains("failed to start (lifespan)", StringComparison.Ordinal));
        Assert.DoesNotContain(stderr, l => l.Contains(") ready", StringComparison.Ordinal));
    }

    [Fact]
    public async Task App_raising_on_lifespan_is_served_without_it()
    {
        await using var mica = await MicaProcess.StartAsync("lifespan_unsupported:app");
        using var client = mica.CreateClient();
        using var response = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("served without lifespan", await response.Content.ReadAsStringAsync());
        Assert.Contains(mica.StderrLines, l => l.Contains("[INFO]", StringComparison.Ordinal)
                                              && l.Contains("lifespan", StringComparison.OrdinalIgnoreCase)
                                              && l.Contains("unsupported", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task Asginl_interface_does_not_call_lifespan()
    {
        await using var mica = await MicaProcess.StartAsync("lifespan_app:app", ["--interface", "asginl"]);
        using (var client = mica.CreateClient())
        {
            var result = await client.GetJsonAsync("/");
            Assert.False(result.Bool("startup_called"));
            // scope["state"] may be present, but nothing from a lifespan startup can be in it.
            if (result.Bool("has_state"))
                Assert.Empty(result.GetProperty("state").EnumerateObject());
        }
        Assert.Equal(0, await mica.StopAsync());
        Assert.DoesNotContain("LIFESPAN STARTUP", mica.StdoutLines);
        Assert.DoesNotContain("LIFESPAN SHUTDOWN", mica.StdoutLines);
    }
}
