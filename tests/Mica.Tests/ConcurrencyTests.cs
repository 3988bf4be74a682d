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
