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
    private readonly List<WorkerInfo> _spawned = [];

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
    /// <summary>The built binary itself (what ./mica execs), for wrappers that must exec mica directly.</summary>
    public static string BuiltBinary => Environment.GetEnvironmentVariable("MICATEST_LAUNCHER") is { Length: > 0 } other
        ? other : Path.Combine(RepoRoot, "artifacts", "bin", "Mica", "release", "mica");
    /// <summary>In a wrapper's arguments: replaced by the launcher's path.</summary>
    public const string MicaPathPlaceholder = "{mica}";
    /// <summary>In a wrapper's arguments: replaced by <see cref="BuiltBinary"/> (built first).</summary>
    public const string MicaBinaryPlaceholder = "{mica-binary}";
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
    public static Task<MicaProcess> LaunchAsync(IEnumerable<string> args, IDictionary<string, string?>? environment = null, bool raw = false) =>
        LaunchViaAsync(null, args, environment, raw);

    /// <summary>
    /// Like <see cref="LaunchAsync"/>, but started through <paramref name="wrapper"/> (a program and
    /// its first arguments; mica's path and arguments follow), which must end by exec-ing mica so that
    /// the process started is the master itself (same PID), e.g. <c>/bin/sh -c 'umask 077; exec "$0" "$@"'</c>.
    /// The wrapper may name mica with the placeholder <see cref="MicaPathPlaceholder"/> (the launcher) or
    /// <see cref="MicaBinaryPlaceholder"/> (the built binary); otherwise the launcher's path is appended.
    /// </summary>
    public static async Task<MicaProcess> LaunchViaAsync(IReadOnlyList<string>? wrapper, IEnumerable<string> args, IDictionary<string, string?>? environment = null, bool raw = false)
    {
        await EnsureBuiltAsync();
        List<string> command = [];
        if (wrapper is { Count: > 0 })
        {
            command.AddRange(wrapper.Select(a => a switch { MicaPathPlaceholder => Launcher, MicaBinaryPlaceholder => BuiltBinary, _ => a }));
            if (!wrapper.Contains(MicaPathPlaceholder) && !wrapper.Contains(MicaBinaryPlaceholder)) command.Add(Launcher);
        }
        else command.Add(Launcher);
        if (!raw) command.AddRange(["--python", Python, "--port", "0", "--working-dir", AppsDir]);
        command.AddRange(args);
        return Start(command, environment);
    }

    /// <summary>
    /// Starts <paramref name="command"/> exactly as given (a program that is or runs a mica master
    /// sharing its stdout and stderr, e.g. a virtualenv's <c>mica</c>), in the same hermetic
    /// environment as <see cref="LaunchAsync"/>, and returns at once.
    /// </summary>
    public static MicaProcess Start(IReadOnlyList<string> command, IDictionary<string, string?>? environment = null)
    {
        var psi = new ProcessStartInfo(command[0])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            WorkingDirectory = RepoRoot,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);

        // Hermetic: no MICA_*/GRANIAN_* (nor uvicorn's FORWARDED_ALLOW_IPS) from the environment the tests run in.
        foreach (var key in psi.Environment.Keys.ToList())
            if (key.StartsWith("MICA_", StringComparison.Ordinal) || key.StartsWith("GRANIAN_", StringComparison.Ordinal) || key == "FORWARDED_ALLOW_IPS")
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
                if (AnySpawnedPattern().Match(text) is { Success: true } spawned)
                {
                    var pid = int.Parse(spawned.Groups["pid"].Value);
                    var worker = new WorkerInfo(int.Parse(spawned.Groups["id"].Value), pid) { StartTime = ProcessStartTime(pid) };
                    _spawned.Add(worker);
                    if (WorkerPid == 0 && worker.Id == 1) WorkerPid = worker.Pid;
                }
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
        foreach (var worker in SpawnedWorkers)
            if (worker.IsAlive && IsMicaWorker(worker.Pid)) _ = Libc.kill(worker.Pid, Libc.SIGKILL);
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

    [GeneratedRegex(@"Listening at: https?://\[?(?<host>[^\]/]+?)\]?:(?<port>\d+)")]
    private static partial Regex ListeningPattern();

    [GeneratedRegex(@"Spawned worker-(?<id>\d+) \(pid (?<pid>\d+)\)")]
    private static partial Regex AnySpawnedPattern();

    [GeneratedRegex(@"worker-(?<id>\d+) \(pid (?<pid>\d+)\) ready")]
    private static partial Regex WorkerReadyPattern();

    // ------------------------------------------------------------------ workers and children

    /// <summary>Every worker named by a "Spawned worker-K (pid P)" line so far, in order.</summary>
    public IReadOnlyList<WorkerInfo> SpawnedWorkers
    {
        get { lock (_gate) return [.. _spawned]; }
    }

    /// <summary>The (id, pid) of every "worker-K (pid P) ready" line after <paramref name="after"/>.</summary>
    public IReadOnlyList<(int Id, int Pid)> ReadyWorkers(int after = -1) =>
        [.. Lines.Where(l => l.Index > after && l.Source == Output.Stderr)
            .Select(l => WorkerReadyPattern().Match(l.Text)).Where(m => m.Success)
            .Select(m => (int.Parse(m.Groups["id"].Value), int.Parse(m.Groups["pid"].Value)))];

    /// <summary>Waits until <paramref name="count"/> distinct workers reported ready (after <paramref name="after"/>).</summary>
    public async Task<IReadOnlyList<(int Id, int Pid)>> WaitForReadyWorkersAsync(int count, TimeSpan? timeout = null, int after = -1)
    {
        var seen = new HashSet<int>();
        await WaitForLineAsync(l =>
        {
            if (l.Source == Output.Stderr && WorkerReadyPattern().Match(l.Text) is { Success: true } m) seen.Add(int.Parse(m.Groups["pid"].Value));
            return seen.Count >= count;
        }, timeout ?? ReadyTimeout, after);
        if (Port == 0) throw new InvalidOperationException("workers ready, but no 'Listening at' line was seen\n" + Dump());
        return ReadyWorkers(after);
    }

    /// <summary>The live (not zombie) processes whose parent is the master, from /proc.</summary>
    public IReadOnlyList<int> ChildPids() => ChildrenOf(Pid);

    public static IReadOnlyList<int> ChildrenOf(int parent)
    {
        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            if (ReadStat(pid) is { } stat && stat.State != "Z" && stat.Ppid == parent) children.Add(pid);
        }
        children.Sort();
        return children;
    }

    /// <summary>Polls /proc until the master has exactly <paramref name="count"/> live children; returns them.</summary>
    public async Task<IReadOnlyList<int>> WaitForChildCountAsync(int count, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(15);
        while (true)
        {
            var children = ChildPids();
            if (children.Count == count) return children;
            if (clock.Elapsed > limit)
                throw new TimeoutException($"the master has {children.Count} children ({string.Join(", ", children)}), expected {count}, after {limit.TotalSeconds:0.#} s\n{Dump()}");
            await Task.Delay(25);
        }
    }

    /// <summary>
    /// After the master exited: waits (bounded) until no worker it ever spawned is alive, and fails
    /// naming the survivors (orphans) otherwise.
    /// </summary>
    public async Task AssertNoOrphansAsync(TimeSpan? timeout = null)
    {
        if (!HasExited) throw new InvalidOperationException("AssertNoOrphansAsync: the master is still running");
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(5);
        while (true)
        {
            var alive = SpawnedWorkers.Where(w => w.IsAlive).ToList();
            var children = ChildrenOf(Pid);   // by then, a reused pid at most
            if (alive.Count == 0 && children.Count == 0) return;
            if (clock.Elapsed > limit)
                throw new Xunit.Sdk.XunitException(
                    $"orphans after the master (pid {Pid}) exited: {string.Join(", ", alive.Select(w => $"worker-{w.Id} pid {w.Pid}").Concat(children.Select(c => $"child pid {c}")))}\n{Dump()}");
            await Task.Delay(25);
        }
    }

    internal sealed record ProcStat(string State, int Ppid, ulong StartTime);

    /// <summary>/proc/PID/stat: state, parent and start time (clock ticks since boot); null if gone.</summary>
    internal static ProcStat? ReadStat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return new ProcStat(fields[0], int.Parse(fields[1]), ulong.Parse(fields[19]));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { return null; }
    }

    internal static ulong? ProcessStartTime(int pid) => ReadStat(pid)?.StartTime;
}

/// <summary>A worker as named by the master's log; <see cref="StartTime"/> guards against pid reuse.</summary>
public sealed record WorkerInfo(int Id, int Pid)
{
    public ulong? StartTime { get; init; }

    /// <summary>Alive and not a zombie, and the same process that was spawned (same start time).</summary>
    public bool IsAlive => MicaProcess.ReadStat(Pid) is { } stat && stat.State != "Z" && (StartTime is null || StartTime == stat.StartTime);
}

public static partial class Libc
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12, SIGTERM = 15, SIGTTIN = 21, SIGTTOU = 22;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);
}
