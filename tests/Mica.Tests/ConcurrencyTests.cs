using System.Diagnostics;
using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Requests run concurrently on the event loop (raw_app.py /sleep awaits asyncio.sleep).</summary>
public sealed class ConcurrencyTests(RawAppServer server) : ServerTests<RawAppServer>(server)
{
    [Fact]
    public async Task Two_hundred_concurrent_half_second_requests_finish_together()
    {
        const int count = 200;
        var group = Keys.New();
        using var client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = count,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        })
        { BaseAddress = Mica.BaseAddress, Timeout = TimeSpan.FromSeconds(20) };

        var clock = Stopwatch.StartNew();
        var responses = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var response = await client.GetAsync($"/sleep?s=0.5&group={group}");
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));
        var elapsed = clock.Elapsed;

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.True(elapsed < TimeSpan.FromSeconds(3), $"{count} concurrent 0.5 s requests took {elapsed.TotalSeconds:0.00} s");
        var maxInflight = responses.Max(r => Json.Parse(r.Body).Int("max_inflight"));
        Assert.True(maxInflight >= count / 2, $"at most {maxInflight} requests were in the app at once");
    }
}

/// <summary>
/// <c>--backpressure</c> for an async app: it counts the requests in the app, not the connections
/// (Granian counts connections, so one HTTP/2 connection could bring any number of requests). Over
/// the limit, requests wait for a slot: every one is answered.
/// </summary>
public sealed class AsgiBackpressureTests
{
    /// <summary><paramref name="count"/> concurrent GET /sleep?s=0.3 on <paramref name="client"/>: their statuses, the most in the app at once, the time taken.</summary>
    private static async Task<(HttpStatusCode[] Statuses, int MaxInflight, TimeSpan Elapsed)> SleepConcurrentlyAsync(HttpClient client, int count)
    {
        var group = Keys.New();
        var clock = Stopwatch.StartNew();
        var responses = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var response = await client.GetAsync($"/sleep?s=0.3&group={group}");
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));
        var elapsed = clock.Elapsed;
        var max = responses.Where(r => r.StatusCode == HttpStatusCode.OK).Select(r => Json.Parse(r.Body).Int("max_inflight")).DefaultIfEmpty(0).Max();
        return ([.. responses.Select(r => r.StatusCode)], max, elapsed);
    }

    [Fact]
    public async Task Requests_over_the_backpressure_wait_and_are_all_served()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--backpressure", "2"]);
        using var client = Wsgi.ParallelClient(mica, 6);
        var (statuses, max, elapsed) = await SleepConcurrentlyAsync(client, 6);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.True(max <= 2, $"{max} requests were in the app at once with --backpressure 2");
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.85), $"6 x 0.3 s, 2 at a time, took {elapsed.TotalSeconds:0.00} s");
    }

    [Fact]
    public async Task Backpressure_counts_the_requests_of_one_HTTP2_connection()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", ["--backpressure", "2"]);
        using var client = new HttpClient(new SocketsHttpHandler { EnableMultipleHttp2Connections = false })
        {
            BaseAddress = mica.BaseAddress,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(20),
        };
        var (statuses, max, elapsed) = await SleepConcurrentlyAsync(client, 6);
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.True(max <= 2, $"{max} requests of one HTTP/2 connection were in the app at once with --backpressure 2");
        Assert.True(elapsed >= TimeSpan.FromSeconds(0.85), $"6 x 0.3 s on one connection, 2 at a time, took {elapsed.TotalSeconds:0.00} s");
    }
}
