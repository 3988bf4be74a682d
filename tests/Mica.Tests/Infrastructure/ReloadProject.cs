using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// One test's Python project for the <c>--reload</c> tests: a temporary directory of its own (so
/// tests run in parallel), the app written there as <c>main.py</c>, and mica started on it with
/// <c>--working-dir DIR --reload</c>. Files are written as editors and tools do, and events (log
/// lines, answers) are awaited, never slept for, except for the short "nothing happens" windows.
/// </summary>
public sealed partial class ReloadProject : IDisposable
{
    public const string Module = "main";
    public static readonly TimeSpan ChangeTimeout = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan WorkerTimeout = TimeSpan.FromSeconds(30);

    private readonly TempDirectory _dir = new();

    public ReloadProject(string mainSource)
    {
        Write("main.py", mainSource);
    }

    public string Root => _dir.Path;
    public string MainPy => System.IO.Path.Combine(Root, "main.py");
    public string PathOf(string relative) => System.IO.Path.Combine(Root, relative);

    /// <summary>Writes (creates or truncates) a file below the root, creating its directories; returns its path.</summary>
    public string Write(string relative, string content)
    {
        var path = PathOf(relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    /// <summary>
    /// Launches <c>mica --python /usr/bin/python3 --port 0 --working-dir ROOT --reload
    /// [--reload-ignore-worker-failure] --workers N OPTIONS main:app</c>.
    /// </summary>
    public Task<MicaProcess> LaunchAsync(int workers = 1, bool ignoreWorkerFailure = true, IEnumerable<string>? options = null) =>
        MicaProcess.LaunchAsync(
            [
                "--python", MicaProcess.Python, "--port", "0", "--working-dir", Root, "--reload",
                .. ignoreWorkerFailure ? new[] { "--reload-ignore-worker-failure" } : [],
                "--workers", workers.ToString(), .. options ?? [], $"{Module}:app",
            ], raw: true);

    /// <summary>Like <see cref="LaunchAsync"/>, then waits until <paramref name="workers"/> workers are ready and the watcher runs.</summary>
    public async Task<MicaProcess> StartAsync(int workers = 1, bool ignoreWorkerFailure = true, IEnumerable<string>? options = null)
    {
        var mica = await LaunchAsync(workers, ignoreWorkerFailure, options);
        try
        {
            await mica.WaitForStderrAsync("Watching for changes in", WorkerTimeout);
            await mica.WaitForReadyWorkersAsync(workers, WorkerTimeout);
            return mica;
        }
        catch
        {
            await mica.DisposeAsync();
            throw;
        }
    }

    public void Dispose() => _dir.Dispose();

    // ------------------------------------------------------------------ reloads

    /// <summary>The "Changes detected" lines after <paramref name="after"/>.</summary>
    public static IReadOnlyList<string> ChangeLines(MicaProcess mica, int after = -1) =>
        [.. mica.Lines.Where(l => l.Index > after && l.Source == Output.Stderr && l.Text.Contains("Changes detected in ", StringComparison.Ordinal)).Select(l => l.Text)];

    /// <summary>The "Spawned worker" lines so far.</summary>
    public static int SpawnedCount(MicaProcess mica) =>
        mica.StderrLines.Count(l => l.Contains("Spawned worker-", StringComparison.Ordinal));

    /// <summary>
    /// Runs <paramref name="change"/>, then waits for the "Changes detected" line and for
    /// <paramref name="workers"/> new workers ready; returns the line and the new workers.
    /// </summary>
    public static async Task<(string Line, IReadOnlyList<(int Id, int Pid)> Ready)> ReloadAsync(MicaProcess mica, Action change, int workers = 1)
    {
        var mark = mica.Mark();
        change();
        var line = await mica.WaitForStderrAsync("Changes detected in ", ChangeTimeout, after: mark);
        var ready = await mica.WaitForReadyWorkersAsync(workers, WorkerTimeout, after: line.Index);
        return (line.Text, ready);
    }

    /// <summary>
    /// "Nothing happens": after <paramref name="window"/> (default 1 s, ten quiet periods), no
    /// "Changes detected" line since <paramref name="after"/>.
    /// </summary>
    public static async Task AssertNoReloadAsync(MicaProcess mica, int after, string what, TimeSpan? window = null)
    {
        await Task.Delay(window ?? TimeSpan.FromSeconds(1));
        var lines = ChangeLines(mica, after);
        Assert.True(lines.Count == 0, $"{what} triggered a reload: {string.Join(" | ", lines)}\n{mica.Dump()}");
        Assert.False(mica.HasExited, $"mica exited\n{mica.Dump()}");
    }

    /// <summary>"Changes detected in PATH: reloading" exactly (one path, no "and N more").</summary>
    public static void AssertChangeLineNames(string line, string path, int more = 0)
    {
        var expected = $"Changes detected in {path}{(more > 0 ? $" and {more} more" : "")}: reloading";
        Assert.True(line.EndsWith(expected, StringComparison.Ordinal), $"expected a line ending with '{expected}', got '{line}'");
    }

    // ------------------------------------------------------------------ HTTP

    /// <summary>How long a request may wait for its response (the 503 page is immediate; a worker answers at once).</summary>
    public static readonly TimeSpan ResponseTimeout = TimeSpan.FromSeconds(5);

    /// <summary>One request on a new connection (Connection: close); the whole response, within <see cref="ResponseTimeout"/>.</summary>
    public static async Task<RawResponse> RequestAsync(MicaProcess mica, string path = "/", string method = "GET", params string[] headers)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        connection.Timeout = ResponseTimeout;
        var clock = Stopwatch.StartNew();
        try
        {
            await connection.SendAsync($"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{string.Concat(headers.Select(h => h + "\r\n"))}\r\n");
            return method == "HEAD" ? await connection.ReadHeadAsync() : await connection.ReadResponseAsync(method);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException(
                $"{method} {path}: connected, but no response within {clock.Elapsed.TotalSeconds:0.0} s (nobody accepted the connection, or nobody answered)\n{mica.Dump(40)}");
        }
    }

    /// <summary>GET on a new connection; asserts 200 and returns the body.</summary>
    public static async Task<string> GetOkAsync(MicaProcess mica, string path = "/")
    {
        var response = await RequestAsync(mica, path);
        Assert.True(response.Status == 200, $"GET {path}: {response.Status} {response.BodyText}\n{mica.Dump()}");
        return response.BodyText;
    }

    /// <summary>Polls GET / (new connection each time) until the body is <paramref name="body"/>; the time it took.</summary>
    public static async Task<TimeSpan> WaitForBodyAsync(MicaProcess mica, string body, TimeSpan? timeout = null, TimeSpan? poll = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? WorkerTimeout;
        var last = "";
        while (true)
        {
            try
            {
                var response = await RequestAsync(mica);
                if (response.Status == 200 && response.BodyText == body) return clock.Elapsed;
                last = $"{response.Status} {response.BodyText}";
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or EndOfStreamException or OperationCanceledException or Xunit.Sdk.XunitException)
            {
                last = e.Message;
            }
            if (clock.Elapsed > limit)
                throw new TimeoutException($"GET / did not answer 200 '{body}' within {limit.TotalSeconds:0.#} s; last: {last}\n{mica.Dump()}");
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(10));
        }
    }

    public const string BrowserAccept = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    /// <summary>Asserts the master's 503 error page: status, headers, content type, closed connection.</summary>
    public static void AssertErrorResponse(RawResponse response, bool html, MicaProcess mica, string what)
    {
        var context = $"{what}: {response.Status} {response.Reason}\n{string.Join('\n', response.Headers.Select(h => $"{h.Name}: {h.Value}"))}\n\n{response.BodyText}\n{mica.Dump(40)}";
        Assert.True(response.Status == 503, context);
        Assert.True(response.Header("Retry-After") == "1", "Retry-After: " + context);
        Assert.True(response.Header("Connection")?.Equals("close", StringComparison.OrdinalIgnoreCase) == true, "Connection: " + context);
        var type = response.Header("Content-Type") ?? "";
        Assert.True(type.StartsWith(html ? "text/html" : "text/plain", StringComparison.Ordinal), "Content-Type: " + context);
        if (html)
            Assert.True(MetaRefresh().IsMatch(response.BodyText), "no <meta http-equiv=\"refresh\" content=\"1\">: " + context);
    }

    /// <summary>The text of an HTML page with its entities decoded (to look for a traceback in it).</summary>
    public static string Decoded(RawResponse response) => WebUtility.HtmlDecode(response.BodyText);

    [GeneratedRegex("""<meta\s+http-equiv="refresh"\s+content="1"\s*/?>""", RegexOptions.IgnoreCase)]
    private static partial Regex MetaRefresh();

    // ------------------------------------------------------------------ /proc

    /// <summary>(fd, target) for every open descriptor of <paramref name="pid"/>.</summary>
    public static IReadOnlyList<(string Fd, string Target)> Fds(int pid) =>
        [.. Directory.GetFiles($"/proc/{pid}/fd").Select(fd =>
        {
            try { return (System.IO.Path.GetFileName(fd), new FileInfo(fd).LinkTarget ?? "?"); }
            catch (IOException) { return (System.IO.Path.GetFileName(fd), "gone"); }
        })];

    /// <summary>
    /// The descriptors that can leak per worker or per request: pipes, sockets, anonymous inodes,
    /// files, but not the assemblies the runtime maps as it first needs them (a one-time cost).
    /// </summary>
    public static IReadOnlyList<(string Fd, string Target)> LeakableFds(int pid) =>
        [.. Fds(pid).Where(f => !f.Target.EndsWith(".dll", StringComparison.Ordinal) && !f.Target.EndsWith(".so", StringComparison.Ordinal))];

    /// <summary>The <see cref="LeakableFds"/> of <paramref name="pid"/>, once two readings 100 ms apart agree (bounded).</summary>
    public static async Task<IReadOnlyList<(string Fd, string Target)>> StableLeakableFdsAsync(int pid)
    {
        var previous = LeakableFds(pid);
        for (var i = 0; i < 20; i++)
        {
            await Task.Delay(100);
            var now = LeakableFds(pid);
            if (now.Count == previous.Count) return now;
            previous = now;
        }
        return previous;
    }

    public static string Describe(IEnumerable<(string Fd, string Target)> fds) => string.Join(", ", fds.Select(f => $"{f.Fd}->{f.Target}"));
}

/// <summary>The Python sources the reload tests write (a pure ASGI app, its broken variants, a Starlette app).</summary>
public static class ReloadApps
{
    /// <summary>Created next to main.py (not a watched kind of file), it makes the app's import sleep this many seconds.</summary>
    public const string SlowStartFlag = "slow_start.flag";

    /// <summary>
    /// A pure ASGI app answering <paramref name="version"/> on every path; <c>/sleep</c> sleeps 1 s
    /// first (and prints RELOADAPP SLEEPING PID), <c>/exit</c> ends the worker with os._exit(3).
    /// Its import sleeps while <see cref="SlowStartFlag"/> exists (seconds in the file).
    /// </summary>
    public static string Asgi(string version, string prelude = "", string appName = "app", string? lifespanFailure = null) =>
        prelude + $$"""
        import asyncio
        import os
        import time

        VERSION = "{{version}}"
        _flag = os.path.join(os.path.dirname(os.path.abspath(__file__)), "{{SlowStartFlag}}")
        if os.path.exists(_flag):
            time.sleep(float(open(_flag).read() or "1"))


        async def {{appName}}(scope, receive, send):
            if scope["type"] == "lifespan":
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        {{(lifespanFailure is null
                            ? "await send({\"type\": \"lifespan.startup.complete\"})"
                            : $"await send({{\"type\": \"lifespan.startup.failed\", \"message\": \"{lifespanFailure}\"}})")}}
                    elif message["type"] == "lifespan.shutdown":
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            path = scope["path"]
            if path == "/exit":
                os._exit(3)
            if path == "/sleep":
                print(f"RELOADAPP SLEEPING {os.getpid()}", flush=True)
                await asyncio.sleep(1)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain"), (b"x-worker-pid", str(os.getpid()).encode())]})
            await send({"type": "http.response.body", "body": VERSION.encode()})

        """;

    /// <summary>A Starlette app answering <paramref name="version"/> on /.</summary>
    public static string Starlette(string version) => $$"""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        VERSION = "{{version}}"


        async def home(request):
            return PlainTextResponse(VERSION)


        app = Starlette(routes=[Route("/", home)])

        """;

    /// <summary>The 1-based number of a line appended to <paramref name="source"/>.</summary>
    public static int LineAfter(string source) => source.Split('\n').Length - (source.EndsWith('\n') ? 1 : 0) + 1;
}

/// <summary>Ways a save can break the app, with what the 503 page must then name.</summary>
public enum Breakage { SyntaxError, ImportError, RaiseAtImport, MissingAppAttribute, LifespanStartupFailed }

public sealed record BrokenApp(string Source, string[] MustName, (string Path, int Line)? Location, string? HtmlHeading)
{
    public const string MissingModule = "reload_test_missing_dependency";
    public const string LifespanMessage = "database unreachable at reload-test.invalid:5432";

    public static BrokenApp For(Breakage kind, string mainPy)
    {
        var good = ReloadApps.Asgi("broken-but-should-not-serve");
        switch (kind)
        {
            case Breakage.SyntaxError:
            {
                var line = ReloadApps.LineAfter(good);
                return new(good + "value = = 1\n", ["SyntaxError", "invalid syntax"], (mainPy, line), "SyntaxError: invalid syntax");
            }
            case Breakage.ImportError:
                return new(ReloadApps.Asgi("x", prelude: $"import {MissingModule}\n"),
                    ["ModuleNotFoundError", $"No module named '{MissingModule}'"], (mainPy, 1), $"ModuleNotFoundError: No module named '{MissingModule}'");
            case Breakage.RaiseAtImport:
            {
                var line = ReloadApps.LineAfter(good);
                return new(good + "raise RuntimeError(\"boom at import time\")\n", ["RuntimeError", "boom at import time"], (mainPy, line), "RuntimeError: boom at import time");
            }
            case Breakage.MissingAppAttribute:
                return new(ReloadApps.Asgi("x", appName: "application"), ["attribute 'app' not found in module 'main'"], null, null);
            case Breakage.LifespanStartupFailed:
                return new(ReloadApps.Asgi("x", lifespanFailure: LifespanMessage), ["lifespan", LifespanMessage], null, null);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }
}
