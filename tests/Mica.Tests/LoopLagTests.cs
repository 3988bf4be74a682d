using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>An async app that blocks its event loop is reported in the log, with how long it lasted.</summary>
public sealed partial class LoopLagTests
{
    [Theory]
    [InlineData("asgi")]
    [InlineData("rsgi")]
    public async Task A_blocked_event_loop_is_warned_while_it_lasts_and_then_with_its_duration(string iface)
    {
        await using var mica = await MicaProcess.StartAsync(iface == "asgi" ? Master.PidApp : "rsgi_app:app", ["--interface", iface]);
        using var client = mica.CreateClient();
        Assert.Equal(200, (int)(await client.GetAsync("/pid")).StatusCode);
        var mark = mica.Mark();

        var clock = Stopwatch.StartNew();
        var blocking = client.GetAsync("/block?s=2.5");
        var during = (await mica.WaitForStderrAsync("Event loop blocked for", TimeSpan.FromSeconds(10), mark)).Text;
        Assert.Contains("[WARNING]", during);
        Assert.InRange(Seconds(during), 1.0, 2.5);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5), "the warning came only after the loop was free again");

        var after = (await mica.WaitForStderrAsync("Event loop was blocked for", TimeSpan.FromSeconds(10), mark)).Text;
        Assert.InRange(Seconds(after), 2.2, 4.0);
        Assert.Equal(200, (int)(await blocking).StatusCode);
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task A_loop_that_keeps_turning_is_never_reported()
    {
        await using var mica = await MicaProcess.StartAsync(Master.PidApp);
        using var client = mica.CreateClient();
        // Busy, then idle: neither is a stall. The idle second sees four ticks go through.
        await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => client.GetStringAsync("/pid")));
        var idle = mica.Mark();
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.Equal(0, await mica.StopAsync());
        Assert.DoesNotContain(mica.Lines, l => l.Text.Contains("Event loop", StringComparison.Ordinal));
        Assert.True(mica.Lines.Count > idle);
    }

    private static double Seconds(string line) =>
        double.Parse(SecondsPattern().Match(line).Groups[1].Value, CultureInfo.InvariantCulture);

    [GeneratedRegex(@"blocked for (\d+\.\d) s")]
    private static partial Regex SecondsPattern();
}
