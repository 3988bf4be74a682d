using System.Runtime.InteropServices;
using System.Threading.Channels;
using Mica.Server;
using Mica.Server.Hosting;

namespace Mica;

/// <summary>
/// The master: binds the socket, spawns and watches the workers, and reacts to signals. Signal
/// handlers and worker watchers only post events; <see cref="RunAsync"/> is the one loop that
/// changes state, readable top to bottom (gunicorn's arbiter is the model).
/// </summary>
internal sealed class Supervisor(ServerOptions options)
{
    private readonly Channel<SupervisorEvent> _events = Channel.CreateUnbounded<SupervisorEvent>();
    private readonly List<WorkerProcess> _workers = [];
    private bool _stopping;
    private int _exitCode;

    public static int Run(ServerOptions options)
    {
        Log.Level = Log.Parse(options.LogLevel);
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
        using var listener = Listener.Bind(options.Host, options.Port, options.Backlog);
        Log.Info($"Starting Mica {Cli.MicaCommand.Version}");
        Log.Info($"Listening at: {listener.Url}");
        using var term = Trap(PosixSignal.SIGTERM);
        using var interrupt = Trap(PosixSignal.SIGINT);
        using var quit = Trap(PosixSignal.SIGQUIT);

        Spawn(1, listener);
        await foreach (var e in _events.Reader.ReadAllAsync())
        {
            switch (e)
            {
                case SignalReceived s: HandleSignal(s.Signal); break;
                case WorkerReported r: HandleReport(r.Worker, r.Message); break;
                case WorkerExited x: HandleExit(x.Worker, x.ExitCode); break;
                case KillTimeout: KillRemaining(); break;
            }
            if (_workers.Count == 0) break;
        }
        Log.Info("Shutdown complete");
        return _exitCode;
    }

    private PosixSignalRegistration Trap(PosixSignal signal) =>
        PosixSignalRegistration.Create(signal, context =>
        {
            context.Cancel = true;
            _events.Writer.TryWrite(new SignalReceived(signal));
        });

    private void Spawn(int id, Listener listener)
    {
        var config = new WorkerConfig
        {
            WorkerId = id,
            Target = options.Target,
            Interface = options.Interface,
            Factory = options.Factory,
            WorkingDir = options.WorkingDir,
            Python = options.Python,
            Loop = options.Loop,
            ListenFd = listener.Fd,
            UrlPathPrefix = options.UrlPathPrefix,
            HeaderReadTimeoutMs = options.HeaderReadTimeoutMs,
            KeepAlive = options.KeepAlive,
            LogLevel = options.LogLevel,
            ShutdownTimeoutSeconds = options.WorkersKillTimeoutSeconds ?? 3600,
        };
        var worker = WorkerProcess.Spawn(id, config, _events.Writer);
        _workers.Add(worker);
        Log.Info($"Spawned {worker.Name}");
    }

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
        Log.Info($"Received {signal}: shutting down gracefully");
        BeginStop(exitCode: 0);
    }

    private void BeginStop(int exitCode)
    {
        _stopping = true;
        _exitCode = exitCode;
        foreach (var worker in _workers) worker.Stop();
        if (options.WorkersKillTimeoutSeconds is { } seconds)
            _ = Task.Delay(TimeSpan.FromSeconds(seconds)).ContinueWith(_ => _events.Writer.TryWrite(new KillTimeout()));
    }

    private void KillRemaining()
    {
        foreach (var worker in _workers.Where(w => w.State != WorkerState.Exited))
        {
            Log.Warning($"Killing {worker.Name}: it did not stop in time");
            worker.Kill();
        }
    }

    private void HandleReport(WorkerProcess worker, WorkerMessage message)
    {
        switch (message.Event)
        {
            case WorkerMessage.Ready:
                worker.MoveTo(WorkerState.Ready);
                Log.Info($"{worker.Name} ready");
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
        var asked = worker.State == WorkerState.Stopping;
        var how = exitCode > 128 ? $"killed by signal {exitCode - 128}" : $"exit code {exitCode}";
        worker.Exited();
        _workers.Remove(worker);
        if (asked && exitCode == 0)
        {
            Log.Info($"{worker.Name} stopped");
            return;
        }
        if (asked)
        {
            Log.Warning($"{worker.Name} stopped abnormally ({how})");
            return;
        }
        // Not asked to stop: a failure to start, or a crash. Without respawn the server ends (Granian).
        if (worker.Failure is null) Log.Error($"{worker.Name} died unexpectedly ({how})");
        if (!_stopping) BeginStop(exitCode: 1);
    }
}
