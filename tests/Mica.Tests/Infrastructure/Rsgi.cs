using System.Text.Json;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>tests/apps/rsgi_app.py with --interface rsgi, on TCP (HTTP/1.1 and HTTP/2 cleartext).</summary>
public class RsgiAppServer : ProtoServerFixture
{
    public const string AppName = "rsgi_app:app";
    protected override string App => AppName;
    protected override Task<string[]> OptionsAsync() => Task.FromResult<string[]>(["--interface", "rsgi"]);
}

/// <summary>Helpers for the RSGI tests (rsgi_app.py).</summary>
public static class Rsgi
{
    /// <summary>One request on a new connection (Connection: close added), its whole response.</summary>
    public static async Task<RawResponse> RawAsync(MicaProcess mica, string request, string method = "GET")
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(request);
        return await connection.ReadResponseAsync(method);
    }

    /// <summary>A request line and headers ("Name: value" lines), Host: localhost and Connection: close included.</summary>
    public static string Request(string method, string target, params string[] headers) =>
        $"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{string.Concat(headers.Select(h => h + "\r\n"))}\r\n";

    /// <summary>GET /info... on a new connection: the scope JSON the app reports.</summary>
    public static async Task<JsonElement> InfoAsync(MicaProcess mica, string target = "/info", params string[] headers)
    {
        var response = await RawAsync(mica, Request("GET", target, headers));
        Assert.True(response.Status == 200, $"GET {target}: {response.Status} {response.BodyText}\n{mica.Dump(30)}");
        return Json.Parse(response.Body);
    }

    /// <summary>Waits for the ERROR line containing <paramref name="text"/> logged after <paramref name="mark"/>.</summary>
    public static Task<LogLine> WaitForErrorAsync(MicaProcess mica, string text, int mark) =>
        mica.WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Contains("[ERROR]", StringComparison.Ordinal)
                                   && l.Text.Contains(text, StringComparison.Ordinal), TimeSpan.FromSeconds(10), mark);

    /// <summary>The stdout line "TAG KEY ..." the app prints for a request; returns what follows the key.</summary>
    public static async Task<string> WaitForEventAsync(MicaProcess mica, string tag, string key, TimeSpan? timeout = null)
    {
        var prefix = $"{tag} {key}";
        var line = await mica.WaitForLineAsync(l => l.Source == Output.Stdout && (l.Text == prefix || l.Text.StartsWith(prefix + " ", StringComparison.Ordinal)),
            timeout ?? TimeSpan.FromSeconds(10));
        return line.Text[prefix.Length..].Trim();
    }

    /// <summary>The server still answers a plain request (after a test that made the app fail).</summary>
    public static async Task AssertStillServingAsync(MicaProcess mica)
    {
        var response = await RawAsync(mica, Request("GET", "/str"));
        Assert.True(response.Status == 200 && response.BodyText == "héllo wörld ✓", $"after the failure: {response.Status} {response.BodyText}\n{mica.Dump(30)}");
    }

    public static IEnumerable<(string Name, string Value)> Pairs(JsonElement items) =>
        items.EnumerateArray().Select(p => (p[0].GetString()!, p[1].GetString()!));

    public static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString()!)];
}
