using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// A bounded, seeded mutation fuzzer for HTTP/1.1 requests, played against a server of
/// tests/apps/wire_echo.py. Case N is valid requests (<see cref="Seeds"/>) mutated by a
/// <see cref="Random"/> seeded with (seed, N) alone, so any case can be replayed. Each case goes
/// over a new connection; the server must answer with whole responses of an expected status (1xx,
/// 2xx, 4xx or 505), or close, within <see cref="Bound"/>. Once it falls silent for
/// <see cref="Quiet"/> (waiting for more of a cut-short request, or for the next one), the
/// connection is half-closed, and the server must then close it within the bound. (Kestrel, like
/// hyper and uvicorn, ends a connection at the client's end of stream, answered or not.) A valid
/// request on a new connection must then be served. <c>MICATEST_FUZZ_CASES</c> and
/// <c>MICATEST_FUZZ_SEED</c> change the number of cases and the seed (scripts/fuzz).
/// </summary>
public sealed class Http1Fuzzer(MicaProcess mica, int seed)
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(150);
    private const int Lanes = 16;

    public static int CasesFromEnvironment(int @default) =>
        int.TryParse(Environment.GetEnvironmentVariable("MICATEST_FUZZ_CASES"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : @default;

    public static int SeedFromEnvironment(int @default) =>
        int.TryParse(Environment.GetEnvironmentVariable("MICATEST_FUZZ_SEED"), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : @default;

    /// <summary>The valid requests the cases start from: each framing, each target form, the paths around the body.</summary>
    private static readonly byte[][] Seeds = [.. new[]
    {
        "GET /echo?a=1&b=two HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        "GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /two HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
        "GET http://localhost/abs?q HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /h2c HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
        "PUT /noread HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nCookie: a=1; b=2\r\nX-Forwarded-For: 10.0.0.1\r\n\r\nbody",
    }.Select(Encoding.Latin1.GetBytes)];

    private static readonly byte[] Specials = [(byte)'\r', (byte)'\n', 0, 0x7F, 0x80, 0xFF, 0x0B, 0x0C, .. " \t:;,\"\\=/?#%"u8];

    private static readonly string[] Numbers = ["-1", "0", "+5", "-0", "0x10", "99999999999999999999", "18446744073709551616", "5 5", " 7 ", "1e3", "", "00000000000000000000000001", "ffffffff", "7fffffff"];

    private static readonly string[] Lines =
    [
        "Transfer-Encoding: chunked", "Transfer-Encoding: xchunked", "Transfer-Encoding: chunked, identity", "Transfer-Encoding:\tchunked",
        "Content-Length: 3", "Content-Length: 100", "Content-Length: 0", "Expect: 100-continue", "Connection: close",
        "Connection: keep-alive, Upgrade", "Host: other", "Host:", "Upgrade: h2c", "Upgrade: websocket", " folded", "X:", ":x", "Transfer-Encoding : chunked",
    ];

    /// <summary>Case <paramref name="index"/>'s request bytes.</summary>
    public byte[] Case(int index)
    {
        var random = new Random(HashCode.Combine(seed, index));
        var request = new List<byte>(Seeds[random.Next(Seeds.Length)]);
        for (var n = random.Next(1, 4); n > 0; n--) Mutate(request, random);
        return [.. request];
    }

    private static void Mutate(List<byte> r, Random random)
    {
        int At() => random.Next(r.Count + 1);
        switch (random.Next(12))
        {
            case 0 when r.Count > 0: r[random.Next(r.Count)] = (byte)random.Next(256); break;
            case 1 when r.Count > 0: r[random.Next(r.Count)] ^= (byte)(1 << random.Next(8)); break;
            case 2: r.Insert(At(), Specials[random.Next(Specials.Length)]); break;
            case 3: r.InsertRange(At(), "\r\n"u8.ToArray()); break;
            case 4 when r.Count > 0:
            {
                var at = random.Next(r.Count);
                r.RemoveRange(at, Math.Min(r.Count - at, random.Next(1, 17)));
                break;
            }
            case 5:
            {
                var cut = random.Next(r.Count + 1);
                r.RemoveRange(cut, r.Count - cut);
                break;
            }
            case 6:
            {
                var (start, end) = LineAt(r, random.Next(r.Count + 1));
                var times = random.Next(1, random.Next(2) == 0 ? 3 : 200);
                var line = r.GetRange(start, end - start);
                for (var k = 0; k < times; k++) r.InsertRange(end, line);
                break;
            }
            case 7:
            {
                var size = random.Next(4) switch { 0 => 9000, 1 => 40_000, 2 => 120_000, _ => random.Next(100, 5000) };
                r.InsertRange(At(), Enumerable.Repeat((byte)"aA0 ;=-\t"[random.Next(8)], size));
                break;
            }
            case 8:
            {
                var digits = Enumerable.Range(0, r.Count).Where(i => char.IsAsciiDigit((char)r[i]) && (i == 0 || !char.IsAsciiDigit((char)r[i - 1]))).ToList();
                if (digits.Count == 0) goto case 2;
                var at = digits[random.Next(digits.Count)];
                var end = at;
                while (end < r.Count && char.IsAsciiDigit((char)r[end])) end++;
                r.RemoveRange(at, end - at);
                r.InsertRange(at, Encoding.Latin1.GetBytes(Numbers[random.Next(Numbers.Length)]));
                break;
            }
            case 9:
            {
                var firstLineEnd = r.IndexOf((byte)'\n');
                r.InsertRange(firstLineEnd < 0 ? r.Count : firstLineEnd + 1, Encoding.Latin1.GetBytes(Lines[random.Next(Lines.Length)] + "\r\n"));
                break;
            }
            case 10 when r.Count > 0:
            {
                var at = random.Next(r.Count);
                var c = (char)r[at];
                r[at] = (byte)(char.IsAsciiLetterUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
                break;
            }
            case 11 when r.Count > 1:
            {
                var at = random.Next(r.Count - 1);
                var slice = r.GetRange(at, Math.Min(r.Count - at, random.Next(1, 64)));
                for (var k = random.Next(1, 8); k > 0; k--) r.InsertRange(at, slice);
                break;
            }
            default: r.Insert(At(), (byte)random.Next(256)); break;
        }
    }

    /// <summary>The line (up to and including its LF) around <paramref name="at"/>.</summary>
    private static (int Start, int End) LineAt(List<byte> r, int at)
    {
        var start = at;
        while (start > 0 && r[start - 1] != '\n') start--;
        var end = at;
        while (end < r.Count && r[end] != '\n') end++;
        return (start, Math.Min(r.Count, end + 1));
    }

    // ------------------------------------------------------------------ playing

    /// <summary>How the cases went: each outcome ("400", "200+400", "closed"...) with its count and its first case.</summary>
    public sealed record Report(int Cases, TimeSpan Elapsed, IReadOnlyDictionary<string, (int Count, int First)> Outcomes, IReadOnlyList<string> Findings)
    {
        public override string ToString() =>
            $"{Cases} cases in {Elapsed.TotalSeconds:0.0} s; answers: {string.Join(", ", Outcomes.OrderByDescending(o => o.Value.Count).Select(o => $"{o.Key} x{o.Value.Count} (first: case {o.Value.First})"))}";
    }

    /// <summary>
    /// Plays <paramref name="cases"/> cases against <paramref name="mica"/>: no finding, no error
    /// logged, and the same worker process (never crashed, never replaced) at the end.
    /// </summary>
    public static async Task<Report> AssertServerHoldsAsync(MicaProcess mica, int cases, int seed)
    {
        var worker = mica.WorkerPid;
        var mark = mica.Mark();
        var report = await new Http1Fuzzer(mica, seed).RunAsync(cases);
        Xunit.Assert.True(report.Findings.Count == 0, $"{report}\n{report.Findings.Count} findings (at most 20 are collected):\n{string.Join("\n", report.Findings)}\n{mica.Dump(40)}");
        Xunit.Assert.True(MicaServer.IsAlive(mica) && mica.WorkerPid == worker && mica.SpawnedWorkers.Count == 1,
            $"the worker (pid {worker}) did not survive the fuzzing\n{mica.Dump(40)}");
        var errors = mica.Lines.Where(l => l.Index > mark && l.Source == Output.Stderr && l.Text.Contains("[ERROR]", StringComparison.Ordinal)).ToList();
        Xunit.Assert.True(errors.Count == 0, $"errors logged while fuzzing:\n{string.Join("\n", errors.Take(20))}");
        return report;
    }

    public async Task<Report> RunAsync(int cases)
    {
        var outcomes = new ConcurrentDictionary<string, (int Count, int First)>();
        var findings = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Lanes).Select(lane => Task.Run(async () =>
        {
            for (var i = lane; i < cases && findings.Count < 20; i += Lanes)
            {
                var request = Case(i);
                var (outcome, finding) = await PlayAsync(request);
                outcomes.AddOrUpdate(outcome, (1, i), (_, o) => (o.Count + 1, Math.Min(o.First, i)));
                finding ??= await ProbeAsync();
                if (finding is not null) findings.Enqueue($"case {i} (seed {seed}): {finding}\n  request: {Http1Corpus.Escape(request)}");
            }
        })));
        return new Report(cases, clock.Elapsed, outcomes, [.. findings]);
    }

    /// <summary>Sends one case and reads the answer: its outcome ("400", "200+200", "closed") and what was wrong, if anything.</summary>
    private async Task<(string Outcome, string? Finding)> PlayAsync(byte[] request)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        connection.Timeout = Bound;
        var halfClosed = false;
        try { await connection.SendAsync(request); }
        catch (IOException) { }   // the server answered and closed before taking it all
        var statuses = new List<int>();
        string Outcome() => (statuses.Count == 0 ? "closed" : string.Join('+', statuses)) + (halfClosed ? " at end of stream" : "");
        try
        {
            while (true)
            {
                if (!halfClosed && !await connection.WaitForDataAsync(Quiet))
                {
                    halfClosed = true;
                    connection.CloseOutput();
                }
                if (await connection.ReadResponseOrCloseAsync() is not { } response) break;
                statuses.Add(response.Status);
                if (response.Status is not ((>= 100 and < 300) or (>= 400 and < 500) or 505))
                    return (Outcome(), $"answered {response.Status}");
                if (response.Status == 101)   // h2c: HTTP/2 follows, which this client does not speak
                {
                    if (!halfClosed) connection.CloseOutput();
                    if (await connection.ReadUntilClosedAsync(Bound) is null) return (Outcome(), "did not close after the 101");
                    break;
                }
            }
            return (Outcome(), null);
        }
        catch (OperationCanceledException)
        {
            return (Outcome(), $"neither answered nor closed within {Bound.TotalSeconds} s");
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException or ArgumentException)
        {
            return (Outcome(), $"sent something that is not a whole response ({e.GetType().Name}: {e.Message})");
        }
    }

    /// <summary>A valid request on a new connection is served; null if so.</summary>
    private async Task<string?> ProbeAsync()
    {
        try
        {
            await using var connection = await RawConnection.ConnectAsync(mica);
            connection.Timeout = Bound;
            await connection.SendAsync("GET /probe HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            var response = await connection.ReadResponseAsync();
            return response.Status == 200 && response.Header("x-echo") == "GET /probe len=0 cl=- te=-"
                ? null
                : $"the next valid request got {response.Status} {response.Header("x-echo")}";
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or InvalidDataException or System.Net.Sockets.SocketException)
        {
            return $"the next valid request failed: {e.GetType().Name}: {e.Message}";
        }
    }
}
