using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Mica.Tests.Infrastructure;

/// <summary>Which output stream a captured line came from.</summary>
public enum Output { Stdout, Stderr }

public sealed record LogLine(Output Source, string Text, int Index)
{
    public override string ToString() => $"{(Source == Output.Stdout ? "out" : "err")}| {Text}";
}

/// <summary>
/// One real <c>./mica</c> process (the master; its worker shares its stdout and stderr), started
/// with redirected output that is captured line by line. Tests wait for lines (events), never sleep.
/// </summary>
public sealed partial class MicaProcess : IAsyncDisposable, IDisposable
{
    public const string Python = "/usr/bin/python3";
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly object _gate = new();
    private readonly List<LogLine> _lines = [];
    private readonly List<(Func<LogLine, bool> Match, TaskCompletionSource<LogLine> Done)> _waiters = [];
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Pid { get; }
    public IReadOnlyList<string> Arguments { get; }
    /// <summary>The port parsed from "Listening at: http://HOST:PORT" (0 until seen).</summary>
    public int Port { get; private set; }
    public string Host { get; private set; } = "127.0.0.1";
    /// <summary>The pid from "Spawned worker-1 (pid N)" (0 until seen).</summary>
    public int WorkerPid { get; private set; }
    public Uri BaseAddress => new($"http://{Host}:{Port}/");

    // ------------------------------------------------------------------ locating things

    public static string RepoRoot { get; } = FindRepoRoot();
    public static string AppsDir => Path.Combine(RepoRoot, "tests", "apps");
    /// <summary>./mica, or the launcher named by MICATEST_LAUNCHER (to run the suite against another build).</summary>
    public static string Launcher => Environment.GetEnvironmentVariable("MICATEST_LAUNCHER") is { Length: > 0 } other ? other : Path.Combine(RepoRoot, "mica");

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "mica")) && Directory.Exists(Path.Combine(dir.FullName, "src"))
                && Directory.Exists(Path.Combine(dir.FullName, "tests", "apps")))
                return dir.FullName;
        throw new InvalidOperationException($"cannot find the repository root above {AppContext.BaseDirectory}");
    }

    // ------------------------------------------------------------------ build once

    private static readonly SemaphoreSlim BuildLock = new(1, 1);
    private static bool _built;

    /// <summary>
    /// Runs <c>./mica --version</c> once, so that the launcher's incremental build (if any) happens
    /// here, one at a time, and not concurrently inside the servers the tests start in parallel.
    /// </summary>
    public static async Task EnsureBuiltAsync()
    {
        if (_built) return;
        await BuildLock.WaitAsync();
        try
        {
            if (_built) return;
            var psi = new ProcessStartInfo(Launcher) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("--version");
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
            await p.WaitForExitAsync(cts.Token);
            if (p.ExitCode != 0)
                throw new InvalidOperationException($"./mica --version failed ({p.ExitCode}):\n{await stdout}\n{await stderr}");
            _built = true;
        }
        finally
        {
            BuildLock.Release();
        }
    }

    // ------------------------------------------------------------------ start

    private MicaProcess(ProcessStartInfo psi)
    {
        Arguments = [.. psi.ArgumentList];
        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(Output.Stdout, e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(Output.Stderr, e.Data);
        _process.Exited += (_, _) =>
        {
            try { _exited.TrySetResult(_process.ExitCode); }
            catch (InvalidOperationException) { _exited.TrySetResult(-1); }
        };
        _process.Start();
        Pid = _process.Id;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>
    /// Starts <c>./mica --python /usr/bin/python3 [--port 0 --working-dir tests/apps] ARGS</c> and
    /// returns at once (no waiting for ready). <paramref name="raw"/> passes ARGS alone.
    /// </summary>
    public static async Task<MicaProcess> LaunchAsync(IEnumerable<string> args, IDictionary<string, string?>? environment = null, bool raw = false)
    {
        await EnsureBuiltAsync();
        var psi = new ProcessStartInfo(Launcher)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = RepoRoot,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        if (!raw)
        {
            foreach (var a in new[] { "--python", Python, "--port", "0", "--working-dir", AppsDir }) psi.ArgumentList.Add(a);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);

        // Hermetic: no MICA_*/GRANIAN_* from the environment the tests run in.
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("MICA_", StringComparison.Ordinal) || key.StartsWith("GRANIAN_", StringComparison.Ordinal))
                psi.Environment.Remove(key);
        psi.Environment["PYTHONDONTWRITEBYTECODE"] = "1";
        if (environment is not null)
            foreach (var (key, value) in environment)
            {
                if (value is null) psi.Environment.Remove(key);
                else psi.Environment[key] = value;
            }
        var process = new MicaProcess(psi);
        process._process.StandardInput.Close();
        return process;
    }

    /// <summary>Starts mica serving <paramref name="app"/> (module:attr in tests/apps) and waits until the worker is ready.</summary>
    public static async Task<MicaProcess> StartAsync(string app, IEnumerable<string>? options = null, IDictionary<string, string?>? environment = null)
    {
        var process = await LaunchAsync([.. options ?? [], app], environment);
        try
        {
            await process.WaitReadyAsync();
            return process;
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    public async Task WaitReadyAsync()
    {
        await WaitForLineAsync(l => l.Source == Output.Stderr && ReadyPattern().IsMatch(l.Text), ReadyTimeout);
        if (Port == 0) throw new InvalidOperationException("ready, but no 'Listening at' line was seen\n" + Dump());
    }

    // ------------------------------------------------------------------ output

    private void OnLine(Output source, string? text)
    {
        if (text is null)
        {
            (source == Output.Stdout ? _stdoutClosed : _stderrClosed).TrySetResult();
            if (_stdoutClosed.Task.IsCompleted && _stderrClosed.Task.IsCompleted) FailWaiters();
            return;
        }
        List<TaskCompletionSource<LogLine>> matched = [];
        LogLine line;
        lock (_gate)
        {
            line = new LogLine(source, text, _lines.Count);
            _lines.Add(line);
            if (source == Output.Stderr)
            {
                if (Port == 0 && ListeningPattern().Match(text) is { Success: true } m)
                {
                    Host = m.Groups["host"].Value;
                    Port = int.Parse(m.Groups["port"].Value);
                }
                if (WorkerPid == 0 && SpawnedPattern().Match(text) is { Success: true } w)
                    WorkerPid = int.Parse(w.Groups[1].Value);
            }
            for (var i = _waiters.Count - 1; i >= 0; i--)
                if (_waiters[i].Match(line))
                {
                    matched.Add(_waiters[i].Done);
                    _waiters.RemoveAt(i);
                }
        }
        foreach (var done in matched) done.TrySetResult(line);
    }

    private void FailWaiters()
    {
        List<TaskCompletionSource<LogLine>> pending;
        lock (_gate)
        {
            pending = [.. _waiters.Select(w => w.Done)];
            _waiters.Clear();
        }
        foreach (var done in pending)
            done.TrySetException(new InvalidOperationException($"mica's output ended (exit code {ExitCodeText()}) before the line awaited\n{Dump()}"));
    }

    private string ExitCodeText() => _exited.Task.IsCompleted ? _exited.Task.Result.ToString() : "?";

    public IReadOnlyList<LogLine> Lines
    {
        get { lock (_gate) return [.. _lines]; }
    }

    public IReadOnlyList<string> StderrLines => [.. Lines.Where(l => l.Source == Output.Stderr).Select(l => l.Text)];
    public IReadOnlyList<string> StdoutLines => [.. Lines.Where(l => l.Source == Output.Stdout).Select(l => l.Text)];

    /// <summary>Stderr without the launcher's own build output ("mica: building..." up to "Time Elapsed").</summary>
    public IReadOnlyList<string> ServerStderrLines => WithoutBuildOutput(StderrLines);

    public static IReadOnlyList<string> WithoutBuildOutput(IReadOnlyList<string> lines)
    {
        var start = -1;
        for (var i = 0; i < lines.Count; i++) if (lines[i] == "mica: building...") { start = i; break; }
        if (start < 0) return lines;
        var end = start;
        for (var i = start; i < lines.Count; i++) if (lines[i].TrimStart().StartsWith("Time Elapsed", StringComparison.Ordinal)) { end = i; break; }
        return [.. lines.Take(start), .. lines.Skip(end + 1)];
    }

    /// <summary>
    /// The first line (already captured or still to come) matching <paramref name="match"/>;
    /// <paramref name="after"/> skips lines captured before that index.
    /// </summary>
    public Task<LogLine> WaitForLineAsync(Func<LogLine, bool> match, TimeSpan timeout, int after = -1)
    {
        var done = new TaskCompletionSource<LogLine>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            var existing = _lines.FirstOrDefault(l => l.Index > after && match(l));
            if (existing is not null) return Task.FromResult(existing);
            if (_stdoutClosed.Task.IsCompleted && _stderrClosed.Task.IsCompleted)
                return Task.FromException<LogLine>(new InvalidOperationException($"mica's output has ended (exit code {ExitCodeText()})\n{Dump()}"));
            _waiters.Add((l => l.Index > after && match(l), done));
        }
        return WithTimeout(done.Task, timeout);

        async Task<LogLine> WithTimeout(Task<LogLine> task, TimeSpan limit)
        {
            if (await Task.WhenAny(task, Task.Delay(limit)) == task) return await task;
            lock (_gate) _waiters.RemoveAll(w => w.Done == done);
            throw new TimeoutException($"no matching line from mica within {limit.TotalSeconds:0.#} s\n{Dump()}");
        }
    }

    /// <summary>Waits for a line containing <paramref name="text"/> on stdout (where the test apps print).</summary>
    public Task<LogLine> WaitForStdoutAsync(string text, TimeSpan? timeout = null, int after = -1) =>
        WaitForLineAsync(l => l.Source == Output.Stdout && l.Text.Contains(text, StringComparison.Ordinal), timeout ?? TimeSpan.FromSeconds(10), after);

    public Task<LogLine> WaitForStderrAsync(string text, TimeSpan? timeout = null, int after = -1) =>
        WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Contains(text, StringComparison.Ordinal), timeout ?? TimeSpan.FromSeconds(10), after);

    /// <summary>The index of the last captured line (to wait only for lines after it).</summary>
    public int Mark()
    {
        lock (_gate) return _lines.Count - 1;
    }

    public string Dump(int last = 80)
    {
        var lines = Lines;
        return $"--- mica {string.Join(' ', Arguments)} (pid {Pid}), last {Math.Min(last, lines.Count)} of {lines.Count} lines ---\n"
            + string.Join('\n', lines.Skip(Math.Max(0, lines.Count - last)));
    }

    // ------------------------------------------------------------------ stop

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>The exit code, once the process has exited and its output has been read to the end (bounded).</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        if (await Task.WhenAny(_exited.Task, Task.Delay(timeout)) != _exited.Task)
            throw new TimeoutException($"mica did not exit within {timeout.TotalSeconds:0.#} s\n{Dump()}");
        // The worker may hold the pipes a little longer than the master lives; bounded.
        await Task.WhenAny(Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task), Task.Delay(TimeSpan.FromSeconds(5)));
        return await _exited.Task;
    }

    public void Signal(int signal)
    {
        if (!HasExited) _ = Libc.kill(Pid, signal);
    }

    /// <summary>SIGINT (graceful stop), then the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan? timeout = null)
    {
        Signal(Libc.SIGINT);
        return await WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(20));
    }

    public async ValueTask DisposeAsync()
    {
        if (!HasExited)
        {
            Signal(Libc.SIGINT);
            await Task.WhenAny(_exited.Task, Task.Delay(TimeSpan.FromSeconds(10)));
        }
        Dispose();
    }

    public void Dispose()
    {
        if (!HasExited)
        {
            _ = Libc.kill(Pid, Libc.SIGKILL);
            _exited.Task.Wait(TimeSpan.FromSeconds(5));
        }
        if (WorkerPid != 0 && IsMicaWorker(WorkerPid)) _ = Libc.kill(WorkerPid, Libc.SIGKILL);
        _process.Dispose();
    }

    /// <summary>Writes the whole captured output to artifacts/test-logs/ (for a server that died).</summary>
    public static string SaveLog(MicaProcess mica, string why)
    {
        var dir = Path.Combine(RepoRoot, "artifacts", "test-logs");
        Directory.CreateDirectory(dir);
        var app = mica.Arguments.Count > 0 ? mica.Arguments[^1].Replace(':', '_').Replace('/', '_') : "mica";
        var path = Path.Combine(dir, $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{app}-{mica.Pid}-{why}.log");
        File.WriteAllText(path, mica.Dump(int.MaxValue) + "\n");
        return path;
    }

    /// <summary>True while <paramref name="pid"/> is a live (not zombie) mica worker process.</summary>
    public static bool IsMicaWorker(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            if (state == "Z") return false;
            return File.ReadAllText($"/proc/{pid}/cmdline").Contains("__worker", StringComparison.Ordinal);
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>True while a process with this pid exists and is not a zombie.</summary>
    public static bool ProcessAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0] != "Z";
        }
        catch (IOException) { return false; }
    }

    public HttpClient CreateClient(TimeSpan? timeout = null) => new(new SocketsHttpHandler
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        ConnectTimeout = TimeSpan.FromSeconds(5),
        AllowAutoRedirect = false,
    })
    {
        BaseAddress = BaseAddress,
        Timeout = timeout ?? TimeSpan.FromSeconds(20),
    };

    [GeneratedRegex(@"worker-\d+ \(pid \d+\) ready")]
    private static partial Regex ReadyPattern();

    [GeneratedRegex(@"Listening at: http://\[?(?<host>[^\]/]+?)\]?:(?<port>\d+)")]
    private static partial Regex ListeningPattern();

    [GeneratedRegex(@"Spawned worker-1 \(pid (\d+)\)")]
    private static partial Regex SpawnedPattern();
}

public static partial class Libc
{
    public const int SIGINT = 2, SIGKILL = 9, SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);
}
