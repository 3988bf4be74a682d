using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>wsgi_app:app with --interface wsgi (one worker).</summary>
public sealed class WsgiServer : MicaServer
{
    protected override string App => "wsgi_app:app";
    protected override string[] Options => ["--interface", "wsgi"];
}

/// <summary>wsgi_app:app with --interface wsgi and --url-path-prefix /api.</summary>
public sealed class WsgiPrefixServer : MicaServer
{
    public const string Prefix = "/api";
    protected override string App => "wsgi_app:app";
    protected override string[] Options => ["--interface", "wsgi", "--url-path-prefix", Prefix];
}

/// <summary>wire_echo:wsgi: what the app saw of each request, for the corpus and the fuzzer.</summary>
public sealed class WireEchoWsgiServer : MicaServer
{
    protected override string App => "wire_echo:wsgi";
    protected override string[] Options => ["--interface", "wsgi"];
}

public sealed class FlaskWsgiServer : MicaServer
{
    protected override string App => "wsgi_flask:app";
    protected override string[] Options => ["--interface", "wsgi"];
}

/// <summary>The same app with the interface auto-detected (a plain callable taking two arguments).</summary>
public sealed class FlaskAutoServer : MicaServer
{
    protected override string App => "wsgi_flask:app";
}

public sealed class DjangoWsgiServer : MicaServer
{
    protected override string App => "wsgi_django.wsgi:application";
    protected override string[] Options => ["--interface", "wsgi"];
}

public sealed class DjangoAutoServer : MicaServer
{
    protected override string App => "wsgi_django.wsgi:application";
}

public sealed class BottleWsgiServer : MicaServer
{
    protected override string App => "wsgi_bottle:app";
    protected override string[] Options => ["--interface", "wsgi"];
}

public sealed class BottleAutoServer : MicaServer
{
    protected override string App => "wsgi_bottle:app";
}

public sealed class FalconWsgiServer : MicaServer
{
    protected override string App => "wsgi_falcon:app";
    protected override string[] Options => ["--interface", "wsgi"];
}

public sealed class FalconAutoServer : MicaServer
{
    protected override string App => "wsgi_falcon:app";
}

/// <summary>Helpers for the WSGI tests: the app's counters, the worker's threads and memory.</summary>
public static partial class Wsgi
{
    public const string App = "wsgi_app:app";

    /// <summary>GET /stats?key=K of wsgi_app: the counters recorded under that key (missing ones are 0).</summary>
    public static async Task<Dictionary<string, int>> StatsAsync(HttpClient client, string key)
    {
        var stats = await client.GetJsonAsync($"/stats?key={key}");
        return stats.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
    }

    public static int Get(this Dictionary<string, int> stats, string name) => stats.TryGetValue(name, out var n) ? n : 0;

    /// <summary>Polls /stats?key=K (bounded) until <paramref name="condition"/> holds; returns the last stats.</summary>
    public static async Task<Dictionary<string, int>> WaitForStatsAsync(HttpClient client, string key,
        Func<Dictionary<string, int>, bool> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(10);
        while (true)
        {
            var stats = await StatsAsync(client, key);
            if (condition(stats)) return stats;
            if (clock.Elapsed > limit)
                throw new TimeoutException($"not within {limit.TotalSeconds:0.#} s: {what}; stats for {key}: {string.Join(", ", stats.Select(s => $"{s.Key}={s.Value}"))}");
            await Task.Delay(50);
        }
    }

    /// <summary>The OS names (/proc/PID/task/*/comm) of the threads of <paramref name="pid"/>.</summary>
    public static IReadOnlyList<string> ThreadNames(int pid)
    {
        var names = new List<string>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try { names.Add(File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n')); }
            catch (IOException) { }   // the thread ended meanwhile
        }
        return names;
    }

    /// <summary>The names of the worker's WSGI threads (mica-wsgi-N).</summary>
    public static IReadOnlyList<string> WsgiThreads(int pid) => [.. ThreadNames(pid).Where(n => n.StartsWith("mica-wsgi", StringComparison.Ordinal)).Order()];

    [GeneratedRegex(@"^mica-wsgi-\d+$")]
    public static partial Regex WsgiThreadName();

    /// <summary>VmRSS of <paramref name="pid"/> in KiB.</summary>
    public static long RssKb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        throw new InvalidOperationException("no VmRSS line");
    }

    /// <summary>A normal request (GET /ok) still gets 200 "ok".</summary>
    public static async Task AssertStillServingAsync(MicaProcess mica)
    {
        using var client = mica.CreateClient(TimeSpan.FromSeconds(10));
        using var response = await client.GetAsync("/ok");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK && body == "ok",
            $"GET /ok after the previous request: {(int)response.StatusCode} {body}\n{mica.Dump(40)}");
    }

    /// <summary>A client allowing <paramref name="connections"/> parallel connections.</summary>
    public static HttpClient ParallelClient(MicaProcess mica, int connections, TimeSpan? timeout = null) =>
        new(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        })
        { BaseAddress = mica.BaseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(20) };

    /// <summary>Body bytes with a running digest: the sha256 (hex) and length of a stream, read to its end.</summary>
    public static async Task<(string Sha256, long Length)> HashAsync(Stream stream, CancellationToken ct)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, ct)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            total += n;
        }
        return (Convert.ToHexStringLower(sha.GetHashAndReset()), total);
    }

    public static JsonElement Environ(this JsonElement payload) => payload.GetProperty("environ");
}
