using System.Diagnostics;
using System.IO.Pipes;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Mica.Server;
using Mica.Server.Hosting;
using Mica.Server.Native;

namespace Mica;

internal enum WorkerState { Starting, Ready, Stopping, Exited }

/// <summary>
/// One worker process as the master sees it: the process, its two control pipes and its state.
/// Everything it observes (a message, the exit) is posted to the supervisor's event channel;
/// state changes happen in the supervisor loop only.
/// </summary>
internal sealed class WorkerProcess
{
    private readonly AnonymousPipeServerStream _toWorker;
    private readonly AnonymousPipeServerStream _fromWorker;

    public int Id { get; }
    public Process Process { get; }
    public int Pid { get; }
    public WorkerState State { get; private set; } = WorkerState.Starting;
    /// <summary>Set when the worker reported it could not start.</summary>
    public WorkerMessage? Failure { get; set; }
    /// <summary>Spawned to replace a crashed worker (for crash-loop detection).</summary>
    public bool Respawned { get; }
    /// <summary>The worker this one replaces once ready (rolling restart); null otherwise.</summary>
    public WorkerProcess? Replacing { get; set; }
    public int OverRssSamples { get; set; }
    /// <summary>Why it is queued for a replacement (<c>--metrics</c>' restart reason).</summary>
    public Metrics.RestartReason? ReplacedFor { get; set; }

    private readonly DateTime _spawnedAt = DateTime.UtcNow;
    private DateTime _lastRssSample = DateTime.MinValue;

    public TimeSpan Age => DateTime.UtcNow - _spawnedAt;

    private WorkerProcess(int id, Process process, AnonymousPipeServerStream toWorker, AnonymousPipeServerStream fromWorker, bool respawned, WorkerProcess? replacing)
    {
        Id = id;
        Respawned = respawned;
        Replacing = replacing;
        Process = process;
        Pid = process.Id;
        _toWorker = toWorker;
        _fromWorker = fromWorker;
    }

    public string Name => $"worker-{Id} (pid {Pid})";

    /// <param name="environment">Variables added to the worker's environment (--env-files).</param>
    public static WorkerProcess Spawn(int id, WorkerConfig config, IReadOnlyDictionary<string, string> environment,
        ChannelWriter<SupervisorEvent> events, bool respawned, WorkerProcess? replacing)
    {
        var toWorker = new AnonymousPipeServerStream(PipeDirection.Out, HandleInheritability.Inheritable);
        var fromWorker = new AnonymousPipeServerStream(PipeDirection.In, HandleInheritability.Inheritable);
        var start = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, typeof(WorkerProcess).Assembly.GetName().Name + ".dll"));
        start.ArgumentList.Add(WorkerProgram.Command);
        start.ArgumentList.Add(toWorker.GetClientHandleAsString());
        start.ArgumentList.Add(fromWorker.GetClientHandleAsString());
        // Socket completions run on .NET's epoll threads instead of hopping to the thread pool: the
        // continuations are Kestrel's parsing and the hand-off to Python, all short (the app never
        // runs there). Measured with bench/asgi_hello.py (now bench/suite.py --scenarios get-10b):
        // ~20% less CPU per request. A value set by the user is kept.
        start.Environment.TryAdd("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        // glibc gives threads that malloc their own arenas (up to 8 per core), and a worker's many
        // threads fragment them: under bench/soak.py's streaming and websocket load a worker's RSS
        // grew 7-9% in a few minutes while its managed and Python heaps stayed flat, and it stayed
        // within 1% with 2 arenas (as gunicorn and uvicorn deployments are often told to set).
        start.Environment.TryAdd("MALLOC_ARENA_MAX", "2");
        // glibc serves a large block (128 KiB at first) with its own mmap, but after freeing one it
        // raises that threshold to the block's size, so later blocks of that size (request bodies,
        // Python bytes of 256 KiB uploads) come from the arenas and fragment them for good: under
        // bench/soak.py's mixed load a worker's malloc'd memory grew 29 -> 70 MiB in 4 minutes with
        // 6 MiB in use, and its RSS +48%. A fixed threshold keeps it flat (16-17 MiB, RSS +0%).
        start.Environment.TryAdd("MALLOC_MMAP_THRESHOLD_", "131072");
        if (config.RuntimeThreads is { } threads)
            start.Environment["DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT"] = threads.ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        var process = Process.Start(start) ?? throw new StartupError("cannot start a worker process");
        // Our copies of the child's ends must close, or end-of-stream would never be seen.
        toWorker.DisposeLocalCopyOfClientHandle();
        fromWorker.DisposeLocalCopyOfClientHandle();

        var worker = new WorkerProcess(id, process, toWorker, fromWorker, respawned, replacing);
        var json = JsonSerializer.Serialize(config, ControlJson.Default.WorkerConfig);
        toWorker.Write(Encoding.UTF8.GetBytes(json + "\n"));
        toWorker.Flush();
        var messages = worker.ReadMessagesAsync(events);
        _ = worker.WaitForExitAsync(messages, events);
        return worker;
    }

    private async Task ReadMessagesAsync(ChannelWriter<SupervisorEvent> events)
    {
        using var reader = new StreamReader(_fromWorker, Encoding.UTF8);
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                var message = JsonSerializer.Deserialize(line, ControlJson.Default.WorkerMessage);
                if (message is not null) await events.WriteAsync(new WorkerReported(this, message));
            }
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            Log.Warning($"{Name}: unreadable control message: {e.Message}");
        }
    }

    private async Task WaitForExitAsync(Task messages, ChannelWriter<SupervisorEvent> events)
    {
        await Process.WaitForExitAsync();
        // Its last words (e.g. why it failed) come before the news of its exit.
        await messages;
        await events.WriteAsync(new WorkerExited(this, Process.ExitCode));
    }

    /// <summary>The resident memory in MiB, at most once per <paramref name="intervalSeconds"/>; null between samples.</summary>
    public double? SampleRss(int intervalSeconds)
    {
        if (DateTime.UtcNow - _lastRssSample < TimeSpan.FromSeconds(intervalSeconds)) return null;
        _lastRssSample = DateTime.UtcNow;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{Pid}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { }
        return null;
    }

    /// <summary>The resident memory in bytes now (<c>/proc/PID/statm</c>: resident pages); null once gone.</summary>
    public long? RssBytes()
    {
        try
        {
            var fields = File.ReadAllText($"/proc/{Pid}/statm").Split(' ');
            return long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException or UnauthorizedAccessException) { return null; }
    }

    public void MoveTo(WorkerState state)
    {
        Log.Debug($"{Name}: {State} -> {state}");
        State = state;
    }

    /// <summary>Asks for a graceful stop (SIGTERM); the worker drains, runs lifespan shutdown and exits.</summary>
    public void Stop()
    {
        if (State is WorkerState.Exited or WorkerState.Stopping) return;
        Log.Info($"Stopping {Name}");
        MoveTo(WorkerState.Stopping);
        Libc.kill(Pid, Libc.SIGTERM);
    }

    public void Kill()
    {
        if (State is not WorkerState.Exited) Libc.kill(Pid, Libc.SIGKILL);
    }

    public void Exited()
    {
        MoveTo(WorkerState.Exited);
        _toWorker.Dispose();
        _fromWorker.Dispose();
        Process.Dispose();
    }
}

internal abstract record SupervisorEvent;
internal sealed record SignalReceived(System.Runtime.InteropServices.PosixSignal Signal) : SupervisorEvent;
internal sealed record WorkerReported(WorkerProcess Worker, WorkerMessage Message) : SupervisorEvent;
internal sealed record WorkerExited(WorkerProcess Worker, int ExitCode) : SupervisorEvent;
internal sealed record KillTimeout : SupervisorEvent;
internal sealed record RespawnDue(int Id) : SupervisorEvent;
internal sealed record Tick : SupervisorEvent;
