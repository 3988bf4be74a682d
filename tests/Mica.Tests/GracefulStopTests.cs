using System.Diagnostics;
using Mica.Tests.Infrastructure;
using Xunit;
using Xunit.Abstractions;

namespace Mica.Tests;

/// <summary>
/// SIGTERM while clients are busy: every request the app took is answered whole, requests it did
/// not take are refused or closed before any byte (which clients may safely retry), and idle
/// keep-alive connections are closed with a FIN at once instead of holding the stop up.
/// </summary>
public sealed class GracefulStopTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Sigterm_under_load_answers_every_request_the_app_took_and_exits_0(bool keepAlive)
    {
        // The access log counts what the app answered: 200 lines on the server must be 200s at the clients.
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--access-log", "--access-log-fmt", "ACCESS %(status)d %(path)s"]);
        await using var load = LoadGenerator.Start(mica, concurrency: 32, keepAlive, path: "/sleep?s=0.05");
        await load.WaitForMoreSuccessesAsync(300);

        mica.Signal(Libc.SIGTERM);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(20));
        await load.StopAsync();
        output.WriteLine(load.Summary());

        Assert.True(exitCode == 0, $"exit code {exitCode}\n{mica.Dump()}");
        var answered = mica.StdoutLines.Count(l => l == "ACCESS 200 /sleep");
        Assert.True(answered == load.Succeeded, $"the app answered {answered} requests, the clients received {load.Succeeded} whole: {load.Summary()}");
        Assert.True(load.FailedWith(LoadFailure.Broken) == 0 && load.FailedWith(LoadFailure.Status) == 0, load.Summary());
    }

    [Fact]
    public async Task Idle_keep_alive_connections_are_closed_cleanly_at_once_on_sigterm()
    {
        await using var mica = await MicaProcess.StartAsync("hello:app");
        var idle = new List<RawConnection>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var connection = await RawConnection.ConnectAsync(mica);
                await connection.SendAsync(RawConnection.Get("/"));
                Assert.Equal(200, (await connection.ReadResponseAsync()).Status);
                idle.Add(connection);
            }
            var clock = Stopwatch.StartNew();
            mica.Signal(Libc.SIGTERM);
            foreach (var connection in idle)
            {
                connection.Timeout = TimeSpan.FromSeconds(5);
                // End of stream (a FIN), not a reset and not a wait for the keep-alive timeout.
                Assert.Empty(await connection.ReadToEndAsync());
            }
            Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(10)));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"the stop took {clock.Elapsed.TotalSeconds:0.0} s with idle connections open");
        }
        finally
        {
            foreach (var connection in idle) connection.Dispose();
        }
    }
}
