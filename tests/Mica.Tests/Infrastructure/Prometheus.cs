using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>One sample as Prometheus' own parser read it.</summary>
public sealed record PromSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>One metric family as Prometheus' own parser read it (a counter's name without <c>_total</c>).</summary>
public sealed record PromFamily(string Name, string Type, string Help, IReadOnlyList<PromSample> Samples);

/// <summary>
/// A scrape of mica's metrics endpoint, parsed by the real Prometheus parser
/// (<c>prometheus_client.parser.text_string_to_metric_families</c>, python3-prometheus-client),
/// so that what the tests read is what Prometheus reads.
/// </summary>
public sealed partial class Scrape
{
    public IReadOnlyDictionary<string, PromFamily> Families { get; }
    public string Text { get; }

    private Scrape(string text, IReadOnlyList<PromFamily> families)
    {
        Text = text;
        Families = families.ToDictionary(f => f.Name);
    }

    /// <summary>The family by its exposed name (a counter's <c>_total</c> may be left out); fails naming the families there are.</summary>
    public PromFamily Family(string name)
    {
        var key = name.EndsWith("_total", StringComparison.Ordinal) && !Families.ContainsKey(name) ? name[..^6] : name;
        return Families.TryGetValue(key, out var family)
            ? family
            : throw new Xunit.Sdk.XunitException($"no metric family '{name}' in the scrape:\n{Text}");
    }

    /// <summary>
    /// The value of <paramref name="name"/> (a family's sample, or a histogram's <c>_bucket</c>,
    /// <c>_sum</c>, <c>_count</c>) with exactly these labels; null when there is no such sample.
    /// </summary>
    public double? Value(string name, params (string Name, string Value)[] labels)
    {
        foreach (var family in Families.Values)
            foreach (var sample in family.Samples)
                if ((sample.Name == name || sample.Name == name + "_total") && sample.Labels.Count == labels.Length
                    && labels.All(l => sample.Labels.TryGetValue(l.Name, out var v) && v == l.Value))
                    return sample.Value;
        return null;
    }

    /// <summary>A per-worker sample: <c>name{worker="id"}</c> plus <paramref name="labels"/>.</summary>
    public double? Worker(string name, int id, params (string Name, string Value)[] labels) =>
        Value(name, [("worker", id.ToString(CultureInfo.InvariantCulture)), .. labels]);

    /// <summary>The worker ids that have a sample of <paramref name="family"/>.</summary>
    public IReadOnlyList<int> WorkerIds(string family) =>
        [.. Family(family).Samples.Where(s => s.Labels.ContainsKey("worker")).Select(s => int.Parse(s.Labels["worker"], CultureInfo.InvariantCulture)).Distinct().Order()];

    /// <summary>Parses exposition text with Prometheus' parser (/usr/bin/python3); fails with the parser's error.</summary>
    public static async Task<Scrape> ParseAsync(string text)
    {
        var psi = new ProcessStartInfo(MicaProcess.Python)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = Encoding.UTF8,
        };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ParserScript);
        using var python = Process.Start(psi)!;
        var stdout = python.StandardOutput.ReadToEndAsync();
        var stderr = python.StandardError.ReadToEndAsync();
        await python.StandardInput.WriteAsync(text);
        python.StandardInput.Close();
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await python.WaitForExitAsync(cts.Token);
        if (python.ExitCode != 0)
            throw new Xunit.Sdk.XunitException($"Prometheus' parser refused the exposition:\n{await stderr}\n--- text ---\n{text}");
        using var json = JsonDocument.Parse(await stdout);
        var families = json.RootElement.EnumerateArray().Select(f => new PromFamily(
            f.GetProperty("name").GetString()!, f.GetProperty("type").GetString()!, f.GetProperty("help").GetString()!,
            [.. f.GetProperty("samples").EnumerateArray().Select(s => new PromSample(
                s.GetProperty("name").GetString()!,
                s.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
                double.Parse(s.GetProperty("value").GetString()!, CultureInfo.InvariantCulture)))])).ToList();
        return new Scrape(text, families);
    }

    private const string ParserScript = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        families = [{"name": f.name, "type": f.type, "help": f.documentation,
                     "samples": [{"name": s.name, "labels": s.labels, "value": repr(float(s.value))} for s in f.samples]}
                    for f in text_string_to_metric_families(sys.stdin.read())]
        json.dump(families, sys.stdout)
        """;

    /// <summary>The metrics URL from the master's "Metrics at: URL" line (waited for).</summary>
    public static async Task<Uri> UrlAsync(MicaProcess mica)
    {
        var line = await mica.WaitForStderrAsync("Metrics at: ", MicaProcess.ReadyTimeout);
        return new Uri(MetricsAt().Match(line.Text).Groups[1].Value);
    }

    /// <summary>GET the endpoint: 200, Prometheus' content type, then the parsed body.</summary>
    public static async Task<Scrape> GetAsync(Uri url)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var response = await client.GetAsync(url);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 200, $"GET {url}: {(int)response.StatusCode} {text}");
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        return await ParseAsync(text);
    }

    /// <summary>
    /// Scrapes until <paramref name="condition"/> holds (workers report every scrape interval),
    /// bounded; fails with <paramref name="what"/> and the last scrape.
    /// </summary>
    public static async Task<Scrape> WaitAsync(Uri url, Func<Scrape, bool> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(20);
        while (true)
        {
            var scrape = await GetAsync(url);
            if (condition(scrape)) return scrape;
            if (clock.Elapsed > limit)
                throw new TimeoutException($"not within {limit.TotalSeconds:0.#} s: {what}; last scrape:\n{scrape.Text}");
            await Task.Delay(100);
        }
    }

    [GeneratedRegex(@"Metrics at: (\S+)")]
    private static partial Regex MetricsAt();
}
