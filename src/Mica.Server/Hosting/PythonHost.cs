using Mica.Server.Asgi;
using Mica.Server.Http;
using Mica.Server.Python;
using Mica.Server.Rsgi;
using Mica.Server.Wsgi;

namespace Mica.Server.Hosting;

/// <summary>Why a worker could not start serving: reported to the master, which decides what follows.</summary>
internal sealed record StartFailure(string Reason, string Message, string Traceback = "");

/// <summary>
/// The <c>mica-python</c> thread: it initialises the interpreter (so Python's "main thread" is the
/// one running the event loop, which uvloop requires), loads the app, starts the server for its
/// interface (ASGI: runs lifespan startup; RSGI: calls <c>__rsgi_init__</c>), then serves until
/// shutdown: ASGI and RSGI on this thread's event loop, WSGI on the pool's threads while this one waits.
/// </summary>
internal sealed unsafe class PythonHost
{
    public const string ThreadName = "mica-python";

    private readonly WorkerConfig _config;
    private readonly ExchangeServices _services;
    private readonly TaskCompletionSource<StartFailure?> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IAppServer? _server;

    public PythonHost(WorkerConfig config, ExchangeServices services)
    {
        _config = config;
        _services = services;
    }

    /// <summary>The app's server once <see cref="Started"/> completed without failure.</summary>
    public IAppServer Server => _server ?? throw new InvalidOperationException("not started");

    /// <summary>Null once the app is loaded and lifespan startup is done; the failure otherwise.</summary>
    public Task<StartFailure?> Started => _started.Task;

    /// <summary>Completes when the event loop has stopped and the app's exit hooks ran.</summary>
    public Task Stopped => _stopped.Task;

    public void Start()
    {
        // Python's recursion limit assumes a main-thread-sized C stack.
        var thread = new Thread(Run, maxStackSize: 16 * 1024 * 1024) { Name = ThreadName, IsBackground = true };
        thread.Start();
    }

    /// <summary>Any thread, after Kestrel has drained: the app stops (ASGI: lifespan shutdown).</summary>
    public void BeginShutdown() => _server?.BeginShutdown();

    private void Run()
    {
        try
        {
            var failure = StartPython();
            _started.TrySetResult(failure);
            if (failure is null)
            {
                _server!.Serve();
                using var worker = PyRef.Steal(Py.ImportModule(PyStr.Utf8Z("_mica_worker")));
                using (PyCall.Method(worker.Handle, "at_exit")) { }
            }
        }
        catch (PythonException e)
        {
            if (!_started.TrySetResult(new StartFailure("internal", e.Message, e.Traceback)))
                Log.Error($"Event loop failed: {e.Message}\n{e.Traceback}");
        }
        catch (StartupException e)
        {
            _started.TrySetResult(new StartFailure("python", e.Message));
        }
        catch (Exception e)
        {
            if (!_started.TrySetResult(new StartFailure("internal", e.ToString())))
                Log.Error($"Python thread failed: {e}");
        }
        finally
        {
            _stopped.TrySetResult();
        }
    }

    private StartFailure? StartPython()
    {
        var install = _config.Python;
        Interpreter.Initialize(install, MicaModule.Register);

        using var worker = Interpreter.ImportEmbedded("_mica_worker", "worker.py");
        using var workingDir = PyStr.New(_config.WorkingDir);
        using var argv0 = PyStr.New("mica");
        using var processName = PyStr.New(LogFormatter.ProcessName);
        using var level = PyStr.New(_config.LogLevel);
        using var format = PyStr.New(LogConfig.DefaultFormat);
        using var dateFormat = PyStr.New(LogConfig.DefaultDateFormat);
        using var logConfig = _config.LogConfig is { } json ? PyStr.New(json) : PyRef.Borrow(Py.None);
        using (var logFailure = PyCall.Method(worker.Handle, "setup", workingDir.Handle, argv0.Handle, processName.Handle,
                   level.Handle, format.Handle, dateFormat.Handle, logConfig.Handle))
            if (logFailure.Handle != Py.None) return new StartFailure("log config", PyStr.ToManaged(logFailure.Handle));
        // Before the app is imported: it may import mica.rsgi (or granian.rsgi) for its types.
        using (var rsgi = Interpreter.ImportEmbedded(RsgiServer.ModuleName, "rsgi.py"))
        using (PyCall.Method(worker.Handle, "provide_rsgi_module", rsgi.Handle)) { }

        using var target = PyStr.New(_config.Target);
        using var requested = PyStr.New(_config.Interface);
        using var loaded = PyCall.Method(worker.Handle, "load", target.Handle,
            _config.Factory ? Py.True : Py.False, requested.Handle);
        using var status = PyRef.Steal(Py.SequenceGetItem(loaded.Handle, 0));
        using var second = PyRef.Steal(Py.SequenceGetItem(loaded.Handle, 1));
        using var third = PyRef.Steal(Py.SequenceGetItem(loaded.Handle, 2));
        if (PyStr.ToManaged(status.Handle) != "ok")
            return new StartFailure("load", PyStr.ToManaged(second.Handle), PyStr.ToManaged(third.Handle));
        var app = second.Handle;
        var iface = PyStr.ToManaged(third.Handle);
        var config = _config with { Interface = iface };
        if (iface != "wsgi" && _config.BlockingThreads > 1)
            Log.Warning($"--blocking-threads {_config.BlockingThreads} ignored: the {iface} interface runs the app on one Python thread");

        switch (iface)
        {
            case "asgi" or "asginl":
                var (asgi, lifespanFailure) = AsgiServer.Start(_services, config, worker.Handle, app);
                if (lifespanFailure is not null)
                    return new StartFailure("lifespan", $"lifespan startup failed: {lifespanFailure}");
                _server = asgi;
                break;
            case "rsgi":
                var (rsgi, initFailure) = RsgiServer.Start(_services, config, worker.Handle, app);
                if (initFailure is not null)
                    return new StartFailure("rsgi init", $"__rsgi_init__ failed: {initFailure.Message}", initFailure.Traceback);
                _server = rsgi;
                break;
            case "wsgi":
                _server = new WsgiServer(_services, config, app);
                break;
            default:
                return new StartFailure("load", $"unknown interface '{iface}'");
        }
        Log.Info($"Python {install.Version} ({install.Executable}){_server.Description}, interface {iface}");
        return null;
    }
}
