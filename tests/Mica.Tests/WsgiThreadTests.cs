using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// The WSGI thread pool: --blocking-threads bounds the Python threads per worker (started on demand,
/// named mica-wsgi-N, ended after --blocking-threads-idle-timeout), --backpressure bounds the requests
/// in the app. Each test starts its own server (wsgi_app.py /sleep counts the requests in the app at once).
/// </summary>
public sealed class WsgiThreadTests
{
    private static Task<MicaProcess> StartAsync(params string[] options) =>
        MicaProcess.StartAsync(Wsgi.App, ["--interface", "wsgi", .. options]);

    /// <summary><paramref name="count"/> concurrent GET /sleep?s=S; the statuses and the time they all took.</summary>
    private static async Task<(HttpStatusCode[] Statuses, TimeSpan Elapsed)> SleepConcurrentlyAsync(MicaProcess mica, int count, double seconds)
    {
        using var client = Wsgi.ParallelClient(mica, count);
        // Open the connections first, so that connecting is not part of the measure.
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var r = await client.GetAsync("/ok");
            await r.Content.ReadAsStringAsync();
        }));
        using (var reset = await client.GetAsync("/reset")) Assert.Equal(HttpStatusCode.OK, reset.StatusCode);
        var clock = Stopwatch.StartNew();
        var statuses = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var response = await client.GetAsync($"/sleep?s={seconds}");
            await response.Content.ReadAsStringAsync();
            return response.StatusCode;
        }));
        return (statuses, clock.Elapsed);
    }

    private static async Task<int> MaxInflightAsync(MicaProcess mica)
    {
        using var client = mica.CreateClient();
        return (await client.GetJsonAsync("/inflight")).Int("max");
    }

    [Fact]
    public async Task Sixteen_threads_run_fifty_sleeps_in_four_rounds()
    {
        await using var mica = await StartAsync("--blocking-threads", "16");
        var (statuses, elapsed) = await SleepConcurrentlyAsync(mica, 50, 0.2);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        var max = await MaxInflightAsync(mica);
        Assert.True(max <= 16, $"{max} requests ran at once with --blocking-threads 16");
        Assert.True(max >= 8, $"at most {max} requests ran at once with --blocking-threads 16");
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.6) && elapsed <= TimeSpan.FromSeconds(2.5),
            $"50 x 0.2 s on 16 threads took {elapsed.TotalSeconds:0.00} s, expected about ceil(50/16) x 0.2 = 0.8 s");
    }

    [Fact]
    public async Task One_thread_serialises_the_requests()
    {
        await using var mica = await StartAsync("--blocking-threads", "1");
        var (statuses, elapsed) = await SleepConcurrentlyAsync(mica, 5, 0.2);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(1, await MaxInflightAsync(mica));
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.95), $"5 x 0.2 s on one thread took {elapsed.TotalSeconds:0.00} s: not serialised");
        Assert.True(elapsed <= TimeSpan.FromSeconds(5), $"5 x 0.2 s on one thread took {elapsed.TotalSeconds:0.00} s");
        Assert.True(Wsgi.WsgiThreads(mica.WorkerPid).Count <= 1, string.Join(", ", Wsgi.WsgiThreads(mica.WorkerPid)));
    }

    [Fact]
    public async Task Default_thread_count_runs_many_requests_at_once()
    {
        await using var mica = await StartAsync();
        // Sleeps of 1 s: threads start on demand, and on a loaded machine the 40th may take a few
        // hundred milliseconds to come; what matters is that they do, not how fast.
        var (statuses, elapsed) = await SleepConcurrentlyAsync(mica, 40, 1.0);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        var max = await MaxInflightAsync(mica);
        Assert.True(max >= 30, $"at most {max} of 40 requests ran at once with the default --blocking-threads (512)");
        Assert.True(elapsed < TimeSpan.FromSeconds(4), $"40 concurrent 1 s requests took {elapsed.TotalSeconds:0.00} s");
    }

    /// <summary>Granian: without --blocking-threads, a WSGI worker gets max(1, backpressure // 2) threads.</summary>
    [Fact]
    public async Task Default_thread_count_is_half_the_backpressure()
    {
        await using var mica = await StartAsync("--backpressure", "20");
        var (statuses, elapsed) = await SleepConcurrentlyAsync(mica, 16, 0.3);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        var max = await MaxInflightAsync(mica);
        Assert.True(max <= 10, $"{max} requests ran at once with --backpressure 20 (default threads: 20 // 2 = 10)");
        Assert.True(max >= 8, $"at most {max} of 16 requests ran at once with --backpressure 20 (10 threads)");
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.55), $"16 x 0.3 s on 10 threads took {elapsed.TotalSeconds:0.00} s: two rounds expected");
        var threads = Wsgi.WsgiThreads(mica.WorkerPid);
        Assert.True(threads.Count <= 10, $"{threads.Count} mica-wsgi threads: {string.Join(", ", threads)}");
    }

    [Fact]
    public async Task Threads_are_named_mica_wsgi_and_bounded_by_blocking_threads()
    {
        await using var mica = await StartAsync("--blocking-threads", "4");
        var atStart = Wsgi.WsgiThreads(mica.WorkerPid);
        Assert.True(atStart.Count <= 1, $"threads are started on demand, yet before any request: {string.Join(", ", atStart)}");

        var (statuses, _) = await SleepConcurrentlyAsync(mica, 16, 0.2);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(4, await MaxInflightAsync(mica));
        var threads = Wsgi.WsgiThreads(mica.WorkerPid);
        Assert.True(threads.Count is >= 1 and <= 4, $"{threads.Count} mica-wsgi threads with --blocking-threads 4: {string.Join(", ", threads)}");
        Assert.All(threads, t => Assert.Matches(Wsgi.WsgiThreadName(), t));
        Assert.Contains("mica-wsgi-1", threads);
    }

    [Fact]
    public async Task Idle_threads_end_after_the_idle_timeout()
    {
        await using var mica = await StartAsync("--blocking-threads", "4", "--blocking-threads-idle-timeout", "5");
        var (statuses, _) = await SleepConcurrentlyAsync(mica, 8, 0.2);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        var idleSince = Stopwatch.StartNew();
        var threads = Wsgi.WsgiThreads(mica.WorkerPid);
        Assert.True(threads.Count >= 1, "no mica-wsgi thread right after the load");

        await Master.WaitUntilAsync(() => Wsgi.WsgiThreads(mica.WorkerPid).Count == 0,
            $"the mica-wsgi threads ({string.Join(", ", threads)}) end after 5 s idle", TimeSpan.FromSeconds(15));
        Assert.True(idleSince.Elapsed >= TimeSpan.FromSeconds(3.5), $"the threads ended after {idleSince.Elapsed.TotalSeconds:0.0} s, before the 5 s idle timeout");

        // New requests start threads again.
        await Wsgi.AssertStillServingAsync(mica);
        Assert.NotEmpty(Wsgi.WsgiThreads(mica.WorkerPid));
    }

    [Fact]
    public async Task Slow_upload_does_not_stop_other_requests()
    {
        await using var mica = await StartAsync("--blocking-threads", "2");
        var key = Keys.New();
        var data = new byte[1024 * 1024];
        new Random(11).NextBytes(data);
        await using var upload = await RawConnection.ConnectAsync(mica);
        await upload.SendAsync($"POST /upload-sha?piece=65536&announce={key} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {data.Length}\r\n\r\n");
        await upload.SendAsync(data.AsMemory(0, data.Length / 2));
        await mica.WaitForStdoutAsync($"FIRST READ {key} ");
        // The upload stalls with its thread blocked in wsgi.input.read(): others are still served.
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            await Wsgi.AssertStillServingAsync(mica);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"GET /ok took {clock.Elapsed.TotalSeconds:0.00} s during a stalled upload");
        }
        await upload.SendAsync(data.AsMemory(data.Length / 2));
        var response = await upload.ReadResponseAsync();
        Assert.Equal(200, response.Status);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), Json.Parse(response.Body).Str("sha256"));
    }

    [Fact]
    public async Task Backpressure_bounds_the_requests_in_the_app()
    {
        await using var mica = await StartAsync("--backpressure", "2", "--blocking-threads", "8");
        var (statuses, elapsed) = await SleepConcurrentlyAsync(mica, 6, 0.3);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        var max = await MaxInflightAsync(mica);
        Assert.True(max <= 2, $"{max} requests ran at once with --backpressure 2");
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.85), $"6 x 0.3 s, 2 at a time, took {elapsed.TotalSeconds:0.00} s");
    }

    [Fact]
    public async Task Blocking_threads_above_one_are_rejected_for_asgi()
    {
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--interface", "asgi", "--blocking-threads", "4", "hello:app"],
            raw: true);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var stderr = mica.ServerStderrLines;
        Assert.True(exitCode == 2, $"exit code {exitCode}, expected 2\n{string.Join('\n', stderr)}");
        Assert.True(stderr.Count == 1, $"expected one line on stderr, got {stderr.Count}:\n{string.Join('\n', stderr)}");
        Assert.Contains("blocking-threads", stderr[0]);
    }

    [Theory]
    [InlineData("4")]
    [InlineData("601")]
    public async Task Idle_timeout_outside_5_to_600_is_rejected(string seconds)
    {
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--interface", "wsgi",
             "--blocking-threads-idle-timeout", seconds, Wsgi.App],
            raw: true);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        var stderr = mica.ServerStderrLines;
        Assert.True(exitCode == 2, $"exit code {exitCode}, expected 2\n{string.Join('\n', stderr)}");
        Assert.True(stderr.Count == 1, $"expected one line on stderr, got {stderr.Count}:\n{string.Join('\n', stderr)}");
        Assert.Contains("blocking-threads-idle-timeout", stderr[0]);
    }

    [Fact]
    public async Task Blocking_threads_1_is_accepted_for_asgi()
    {
        await using var mica = await MicaProcess.StartAsync("hello:app", ["--interface", "asgi", "--blocking-threads", "1"]);
        using var client = mica.CreateClient();
        Assert.Equal("Hello, world!", await client.GetStringAsync("/"));
    }
}
