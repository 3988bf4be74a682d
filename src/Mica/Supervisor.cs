using System.Runtime.InteropServices;
using System.Threading.Channels;
using Mica.Metrics;
using Mica.Reload;
using Mica.Server;
using Mica.Server.Hosting;
using Mica.Server.Native;
using Mica.Server.Python;

namespace Mica;

/// <summary>
/// The master: writes the PID file, binds the socket, spawns and watches the workers, and reacts to
/// signals. Signal handlers, timers and worker watchers only post events; <see cref="RunAsync"/> is
/// the one loop that changes state, readable top to bottom (gunicorn's arbiter is the model).
///
/// Signals: TERM / INT / QUIT stop gracefully (a second INT kills); HUP replaces every worker one by
/// one, each replacement ready before the old one is told to stop; TTIN / TTOU add / remove a worker.
///
/// With <c>--reload</c>, a change to the sources stops every worker (they drain) and starts new
/// ones. With <c>--reload-ignore-worker-failure</c> too, a worker that fails never ends the server:
/// the master keeps the port, serves the error as a 503 page meanwhile (<see cref="ErrorResponder"/>)
/// and waits for the next change before starting a worker again (no restart storm).
///
/// Started by the Python API (<c>mica.Mica</c>), the loop runs its hooks at Granian's points through
/// the <see cref="HookChannel"/>.
///
/// With <c>--metrics</c>, the loop keeps the <see cref="MetricsBook"/> (spawns, restarts, the workers'
/// reports) and, after every event, publishes a frozen view of it to the <see cref="MetricsExporter"/>,
/// which answers scrapes on its own tasks.
/// </summary>
internal sealed class Supervisor(ServerOptions options)
{
    /// <summary>A respawned worker dying again this soon means a crash loop (Granian's figure).</summary>
    private static readonly TimeSpan CrashLoopWindow = TimeSpan.FromSeconds(5.5);

    private readonly Channel<SupervisorEvent> _events = Channel.CreateUnbounded<SupervisorEvent>();
    private readonly List<WorkerProcess> _workers = [];
    private readonly Queue<WorkerProcess> _toReplace = new();
    private readonly SystemdNotifier _systemd = SystemdNotifier.FromEnvironment();
    private readonly HookChannel _hooks = HookChannel.FromEnvironment();
    private Listener? _listener;
    private IReadOnlyDictionary<string, string> _workerEnvironment = new Dictionary<string, string>();
    private ErrorResponder? _errorPage;   // created with the listener under --reload-ignore-worker-failure
    private readonly MetricsBook? _metrics = options.Metrics ? new MetricsBook() : null;
    private MetricsExporter? _exporter;
    private PythonInstall? _python;
    private int _target;
    private bool _started, _stopping;
    private int _exitCode;

    public static int Run(ServerOptions options)
    {
        Log.Configure(options.LogConfig is { } json ? LogConfig.Parse(json) : LogConfig.Default, Log.Parse(options.LogLevel));
        if (options.ProcessName is { } name) ProcessName.Set(name);
        try
        {
            return new Supervisor(options).RunAsync().GetAwaiter().GetResult();
        }
        catch (StartupError e)
        {
            Log.Error(e.Message);
            return 1;
        }
    }

    private async Task<int> RunAsync()
    {
        // TLS files are checked before anything else: a bad one is one line and exit 1, not failing workers.
        Microsoft.AspNetCore.Server.Kestrel.Https.HttpsConnectionAdapterOptions? https = null;
        if (options.Tls is { } tls)
        {
            try { https = TlsSetup.Load(tls); }
            catch (StartupException e) { throw new StartupError(e.Message); }
        }
        _workerEnvironment = EnvFiles.Load(options.EnvFiles);
        // The PID file comes first: a second instance must fail before touching the port.
        using var pidFile = options.PidFile is { } path ? PidFile.Create(path) : null;
        using var listener = Listener.FromSystemd()
            ?? (options.Uds is { } uds
                ? Listener.BindUnix(uds, options.UdsPermissions, options.Backlog)
                : Listener.Bind(options.Host, options.Port, options.Backlog));
        _listener = listener;
        using var exporter = options.Metrics ? MetricsExporter.Start(options.MetricsAddress, options.MetricsPort) : null;
        _exporter = exporter;
        using var errorPage = IgnoreWorkerFailures ? new ErrorResponder(listener, https) : null;
        _errorPage = errorPage;
        _python = FindPython();
        Log.Info($"Starting Mica {Cli.MicaCommand.Version}");
        Log.Info($"Listening at: {(options.Tls is null ? listener.Url : listener.Url.Replace("http://", "https://"))}");
        if (exporter is not null) Log.Info($"Metrics at: {exporter.Url}");
        using var signals = new SignalTraps(_events.Writer,
            PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT, PosixSignal.SIGHUP, PosixSignal.SIGTTIN, PosixSignal.SIGTTOU,
            (PosixSignal)Libc.SIGUSR1, (PosixSignal)Libc.SIGUSR2);
        using var ticks = StartTicks();
        using var watcher = StartWatching();

        _hooks.Run("startup");
        _target = options.Workers;
        for (var id = 1; id <= _target; id++) Spawn(id);
        PublishMetrics();
        await foreach (var e in _events.Reader.ReadAllAsync())
        {
            switch (e)
            {
                case SignalReceived s: HandleSignal(s.Signal); break;
                case WorkerReported r: HandleReport(r.Worker, r.Message); break;
                case WorkerExited x: HandleExit(x.Worker, x.ExitCode); break;
                case RespawnDue r: Respawn(r.Id); break;
                case Tick: CheckLifetimeAndMemory(); break;
                case SourcesChanged c: HandleChanges(c.Paths); break;
                case KillTimeout: KillRemaining(); break;
            }
            PublishMetrics();
            if (_stopping && _workers.Count == 0) break;
        }
        _hooks.Run("shutdown");
        _hooks.Dispose();
        Log.Info("Shutdown complete");
        return _exitCode;
    }

    // ------------------------------------------------------------------ spawning and replacing

    /// <summary>Which Python the workers embed, asked once (a subprocess: the master embeds none).</summary>
    private PythonInstall FindPython()
    {
        try { return Interpreter.Probe(Interpreter.Choose(options.Python)); }
        catch (StartupException e) { throw new StartupError(e.Message); }
    }

    private WorkerProcess Spawn(int id, bool respawned = false, WorkerProcess? replacing = null)
    {
        var config = new WorkerConfig
        {
            WorkerId = id,
            Target = options.Target,
            Interface = options.Interface,
            Factory = options.Factory,
            WorkingDir = options.WorkingDir,
            Python = _python!,
            Loop = options.Loop,
            TaskImpl = options.TaskImpl,
            ListenFd = _listener!.Fd,
            UrlPathPrefix = options.UrlPathPrefix,
            UnixSocket = _listener.UnixPath,
            HeaderReadTimeoutMs = options.HeaderReadTimeoutMs,
            Http1BufferSize = options.Http1BufferSize,
            RuntimeThreads = options.RuntimeThreads,
            RuntimeBlockingThreads = options.RuntimeBlockingThreads,
            KeepAlive = options.KeepAlive,
            LogLevel = options.LogLevel,
            AccessLogFormat = options.AccessLogFormat,
            LogConfig = options.LogConfig,
            ShutdownTimeoutSeconds = options.WorkersKillTimeoutSeconds ?? 3600,
            ProcessName = options.ProcessName,
            Workers = options.Workers,
            Backpressure = options.Backpressure,
            BlockingThreads = options.BlockingThreads,
            BlockingThreadsIdleTimeoutSeconds = options.BlockingThreadsIdleTimeoutSeconds,
            WebSockets = options.WebSockets,
            Http = options.Http,
            StaticMounts = options.StaticMounts,
            StaticDirToFile = options.StaticDirToFile,
            StaticExpiresSeconds = options.StaticExpiresSeconds,
            Http2 = options.Http2,
            Limits = options.Limits,
            Tls = options.Tls,
            ProxyHeaders = options.ProxyHeaders,
            ForwardedAllowIps = options.ForwardedAllowIps,
            MetricsIntervalSeconds = options.Metrics ? options.MetricsScrapeIntervalSeconds : null,
        };
        var worker = WorkerProcess.Spawn(id, config, _workerEnvironment, _events.Writer, respawned, replacing);
        _workers.Add(worker);
        _metrics?.Spawned(worker, id);
        Log.Info($"Spawned {worker.Name}{(replacing is null ? "" : $" to replace {replacing.Name}")}");
        return worker;
    }

    /// <summary>A worker that died unexpectedly, after <c>--respawn-interval</c>.</summary>
    private void Respawn(int id)
    {
        if (_stopping) return;
        Spawn(id, respawned: true);
        _metrics?.Restarted(RestartReason.Error);
    }

    /// <summary>Queues a ready worker for a graceful replacement (HUP, lifetime, memory).</summary>
    private void Replace(WorkerProcess worker, RestartReason reason, string why)
    {
        if (_stopping || worker.State != WorkerState.Ready || _toReplace.Contains(worker) || IsBeingReplaced(worker)) return;
        Log.Info($"Replacing {worker.Name}: {why}");
        worker.ReplacedFor = reason;
        _toReplace.Enqueue(worker);
        ReplaceNext();
    }

    private bool IsBeingReplaced(WorkerProcess worker) => _workers.Any(w => w.Replacing == worker);

    /// <summary>One replacement at a time, so capacity never drops below the target.</summary>
    private void ReplaceNext()
    {
        if (_workers.Any(w => w.Replacing is not null)) return;
        while (_toReplace.TryDequeue(out var old))
        {
            if (old.State != WorkerState.Ready) continue;
            Spawn(old.Id, replacing: old);
            if (old.ReplacedFor is { } reason) _metrics?.Restarted(reason);
            return;
        }
        if (_started) _systemd.Notify("READY=1");
    }

    // ------------------------------------------------------------------ events

    private void HandleSignal(PosixSignal signal)
    {
        if (_stopping)
        {
            if (signal == PosixSignal.SIGINT)
            {
                Log.Warning("Second interrupt: killing workers now");
                KillRemaining();
            }
            return;
        }
        switch (signal)
        {
            case PosixSignal.SIGHUP:
                Log.Info("Received SIGHUP: replacing every worker");
                _hooks.Run("reload");
                _systemd.Notify($"RELOADING=1\nMONOTONIC_USEC={SystemdNotifier.MonotonicMicroseconds()}");
                foreach (var worker in _workers.Where(w => w.State == WorkerState.Ready && w.Replacing is null).ToList())
                    Replace(worker, RestartReason.Signal, "reload requested");
                break;
            case PosixSignal.SIGTTIN:
                _target++;
                Log.Info($"Received SIGTTIN: adding a worker ({_target} wanted)");
                Spawn(NextFreeId());
                break;
            case PosixSignal.SIGTTOU:
                if (_target <= 1)
                {
                    Log.Info("Received SIGTTOU: keeping the last worker");
                    break;
                }
                _target--;
                var last = _workers.Where(w => w.State is WorkerState.Ready or WorkerState.Starting && w.Replacing is null)
                    .OrderByDescending(w => w.Id).First();
                Log.Info($"Received SIGTTOU: removing {last.Name} ({_target} wanted)");
                last.Stop();
                break;
            case (PosixSignal)Libc.SIGUSR1:
                // As gunicorn: logrotate moves the files away, then asks for new ones.
                Log.Reopen();
                Log.Info("Received SIGUSR1: reopened log files");
                foreach (var worker in _workers.Where(w => w.State is not WorkerState.Exited))
                    Libc.kill(worker.Pid, Libc.SIGUSR1);
                break;
            case (PosixSignal)Libc.SIGUSR2:
                Log.Warning("Received SIGUSR2: ignored (Mica has no binary upgrade; SIGHUP replaces the workers without dropping a request)");
                break;
            default:
                Log.Info($"Received {signal}: shutting down gracefully");
                BeginStop(exitCode: 0);
                break;
        }
    }

    private int NextFreeId()
    {
        var id = 1;
        while (_workers.Any(w => w.Id == id && w.State != WorkerState.Stopping)) id++;
        return id;
    }

    private void HandleReport(WorkerProcess worker, WorkerMessage message)
    {
        switch (message.Event)
        {
            case WorkerMessage.Ready:
                worker.MoveTo(WorkerState.Ready);
                Log.Info($"{worker.Name} ready");
                if (_errorPage is { Serving: true })
                {
                    _errorPage.Pause();
                    Log.Info("The app is serving again");
                }
                if (worker.Replacing is { } old)
                {
                    worker.Replacing = null;
                    old.Stop();
                    ReplaceNext();
                }
                else if (!_started && _workers.Count(w => w.State == WorkerState.Ready) >= _target)
                {
                    _started = true;
                    _systemd.Notify($"READY=1\nMAINPID={Environment.ProcessId}");
                }
                break;
            case WorkerMessage.Metrics when message.Report is { } report:
                _metrics?.Reported(worker, report, worker.RssBytes());
                break;
            case WorkerMessage.Failed:
                worker.Failure = message;
                var detail = string.IsNullOrEmpty(message.Traceback) ? "" : "\n" + message.Traceback.TrimEnd();
                Log.Error($"{worker.Name} failed to start ({message.Reason}): {message.Message}{detail}");
                break;
        }
    }

    private void HandleExit(WorkerProcess worker, int exitCode)
    {
        var wasAsked = worker.State == WorkerState.Stopping;
        var wasReady = worker.State == WorkerState.Ready;
        var how = exitCode > 128 ? $"killed by signal {exitCode - 128}" : $"exit code {exitCode}";
        var age = worker.Age;
        worker.Exited();
        _workers.Remove(worker);
        _metrics?.Exited(worker);

        if (wasAsked)
        {
            if (exitCode == 0) Log.Info($"{worker.Name} stopped");
            else Log.Warning($"{worker.Name} stopped abnormally ({how})");
            return;
        }
        if (_stopping) return;
        if (IgnoreWorkerFailures)
        {
            KeepServingDespite(worker, wasReady, how);
            return;
        }

        if (!wasReady)
        {
            if (worker.Failure is null) Log.Error($"{worker.Name} died before it was ready ({how})");
            if (worker.Replacing is { } old)
            {
                // A broken replacement must not take the server down: keep the old workers.
                Log.Error($"Replacement failed; keeping {old.Name} and abandoning the pending replacements");
                _toReplace.Clear();
                _systemd.Notify("READY=1");
                return;
            }
            if (!worker.Respawned)
            {
                // Could not start at all (or a TTIN worker could not): Granian's behaviour is to end.
                BeginStop(exitCode: 1);
                return;
            }
        }
        else
        {
            Log.Error($"{worker.Name} died unexpectedly ({how})");
        }

        if (!options.RespawnFailedWorkers)
        {
            BeginStop(exitCode: 1);
            return;
        }
        if (worker.Respawned && age < CrashLoopWindow)
        {
            Log.Error($"Worker crash loop detected ({worker.Name} died {age.TotalSeconds:0.0} s after its respawn), exiting");
            BeginStop(exitCode: 1);
            return;
        }
        Log.Info($"Respawning worker-{worker.Id} in {options.RespawnIntervalSeconds} s");
        Post(new RespawnDue(worker.Id), TimeSpan.FromSeconds(options.RespawnIntervalSeconds));
    }

    // ------------------------------------------------------------------ reload

    private bool IgnoreWorkerFailures => options.Reload && options.ReloadIgnoreWorkerFailure;

    private FileWatcher? StartWatching()
    {
        if (!options.Reload) return null;
        var filter = new ReloadFilter(options.ReloadIgnoreDirs, options.ReloadIgnorePatterns, options.ReloadIgnorePaths);
        var watcher = new FileWatcher(options.ReloadPaths, filter, TimeSpan.FromMilliseconds(Math.Max(options.ReloadTickMs, 100)), _events.Writer);
        Log.Info($"Watching for changes in {string.Join(", ", options.ReloadPaths.Select(Path.GetFullPath))}");
        return watcher;
    }

    private void HandleChanges(IReadOnlyList<string> paths)
    {
        if (_stopping) return;
        Log.Info($"Changes detected in {paths[0]}{(paths.Count > 1 ? $" and {paths.Count - 1} more" : "")}: reloading");
        _hooks.Run("reload");
        _toReplace.Clear();
        foreach (var worker in _workers.Where(w => w.State != WorkerState.Stopping).ToList()) worker.Stop();
        for (var id = 1; id <= _target; id++) Spawn(id);
        _metrics?.Reloaded();
        _metrics?.Restarted(RestartReason.Reload, _target);
    }

    /// <summary>
    /// --reload-ignore-worker-failure: the server outlives any worker. One that failed to start waits
    /// for the next change; one that crashed after serving is respawned. Meanwhile, if no worker
    /// serves, the master answers with the error.
    /// </summary>
    private void KeepServingDespite(WorkerProcess worker, bool wasReady, string how)
    {
        var failure = worker.Failure ?? new WorkerMessage
        {
            Event = WorkerMessage.Failed,
            Reason = wasReady ? "crash" : "died",
            Message = wasReady ? $"{worker.Name} died unexpectedly ({how})" : $"{worker.Name} died before it was ready ({how})",
        };
        if (wasReady)
        {
            Log.Error($"{failure.Message}; respawning in {options.RespawnIntervalSeconds} s");
            Post(new RespawnDue(worker.Id), TimeSpan.FromSeconds(options.RespawnIntervalSeconds));
        }
        else
        {
            if (worker.Failure is null) Log.Error(failure.Message!);
            Log.Warning("Waiting for a change to the sources to start the app again");
        }
        if (_workers.Any(w => w.State == WorkerState.Ready)) return;
        _errorPage!.Serve(failure);
    }

    private void CheckLifetimeAndMemory()
    {
        foreach (var worker in _workers.Where(w => w.State == WorkerState.Ready).ToList())
        {
            if (options.WorkersLifetimeSeconds is { } lifetime && worker.Age > TimeSpan.FromSeconds(lifetime))
                Replace(worker, RestartReason.Lifetime, $"lifetime of {lifetime} s reached");
            if (options.WorkersMaxRssMiB is { } limit && worker.SampleRss(options.RssSampleIntervalSeconds) is { } rss)
            {
                worker.OverRssSamples = rss > limit ? worker.OverRssSamples + 1 : 0;
                if (worker.OverRssSamples >= options.RssSamples)
                    Replace(worker, RestartReason.Rss, $"memory {rss:0} MiB over the limit of {limit} MiB for {worker.OverRssSamples} samples");
            }
        }
    }

    // ------------------------------------------------------------------ stopping

    private void BeginStop(int exitCode)
    {
        _stopping = true;
        _exitCode = exitCode;
        _toReplace.Clear();
        _systemd.Notify("STOPPING=1");
        foreach (var worker in _workers) worker.Stop();
        if (options.WorkersKillTimeoutSeconds is { } seconds) Post(new KillTimeout(), TimeSpan.FromSeconds(seconds));
    }

    private void KillRemaining()
    {
        foreach (var worker in _workers.Where(w => w.State != WorkerState.Exited))
        {
            Log.Warning($"Killing {worker.Name}: it did not stop in time");
            worker.Kill();
        }
    }

    // ------------------------------------------------------------------ plumbing

    /// <summary>After every event: what scrapes see from now on (the exporter never asks the loop).</summary>
    private void PublishMetrics()
    {
        if (_exporter is not null) _exporter.Publish(_metrics!.View());
    }

    private void Post(SupervisorEvent e, TimeSpan delay) =>
        _ = Task.Delay(delay).ContinueWith(_ => _events.Writer.TryWrite(e), TaskScheduler.Default);

    /// <summary>A tick per second when lifetime or memory limits need watching.</summary>
    private IDisposable? StartTicks()
    {
        if (options.WorkersLifetimeSeconds is null && options.WorkersMaxRssMiB is null) return null;
        return new Timer(_ => _events.Writer.TryWrite(new Tick()), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }
}
