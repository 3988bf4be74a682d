using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The one-minute version of <c>bench/soak.py</c> (ten minutes on demand): every kind of traffic
/// at once against two workers, nothing may fail, and after a warm-up neither the RSS nor the open
/// descriptors of the master or a worker may move by more than 5%. It runs alone: its load would
/// slow the tests beside it, and theirs would blur its samples.
/// </summary>
[Collection(nameof(SoakTests))]
public sealed class SoakTests
{
    [Theory]
    [InlineData("asgi")]
    [InlineData("wsgi")]
    public async Task A_minute_of_mixed_load_fails_nothing_and_grows_nothing(string iface)
    {
        var soak = await Tool.RunAsync(MicaProcess.Python, [Path.Combine(MicaProcess.RepoRoot, "bench", "soak.py"),
            "--interface", iface, "--duration", "60", "--warmup", "20", "--sample", "5", "--no-chart"], TimeSpan.FromSeconds(180));
        Assert.True(soak.ExitCode == 0 && soak.Stdout.TrimEnd().EndsWith("PASS", StringComparison.Ordinal), soak.ToString());
    }
}

[CollectionDefinition(nameof(SoakTests), DisableParallelization = true)]
public sealed class SoakCollection;
