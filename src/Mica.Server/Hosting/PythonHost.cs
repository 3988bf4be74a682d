using Mica.Server.Asgi;
using Mica.Server.Python;

namespace Mica.Server.Hosting;

/// <summary>Why a worker could not start serving: reported to the master, which decides what follows.</summary>
internal sealed record StartFailure(string Reason, string Message, string Traceback = "");

/// <summary>
/// The <c>mica-python</c> thread: it initialises the interpreter (so Python's "main thread" is the
/// one running the event loop, which uvloop requires), loads the app, runs lifespan startup, then
/// runs the event loop until shutdown. Nothing else in the worker holds the GIL.
/// </summary>
internal sealed unsafe class PythonHost
{
    public const string ThreadName = "mica-python";

    private readonly WorkerConfig _config;
    private readonly ConnectionDrain _drain;
    private readonly PythonLoop _loop = new();
    private readonly TaskCompletionSource<StartFailure?> _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private AsgiServer? _server;

    public PythonHost(WorkerConfig config, ConnectionDrain drain)
    {
        _config = config;
        _drain = drain;
    }

    /// <summary>The ASGI server once <see cref="Started"/> completed without failure.</summary>
    public AsgiServer Server => _server ?? throw new InvalidOperationException("not started");

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

    /// <summary>Any thread: run lifespan shutdown and stop the loop, after Kestrel has drained.</summary>
    public void BeginShutdown() => _loop.Post(new ShutdownWork(this), 0);

    private sealed class ShutdownWork(PythonHost host) : IPythonWork
    {
        public void RunOnPythonThread(int kind) => host._server?.BeginShutdown();
    }

    private void Run()
    {
        try
        {
            var failure = StartPython(out var pyLoop);
            _started.TrySetResult(failure);
            if (failure is null)
            {
                using (pyLoop) using (PyCall.Method(pyLoop.Handle, "run_forever")) { }
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

    private StartFailure? StartPython(out PyRef pyLoop)
    {
        pyLoop = default;
        var install = _config.Python;
        MicaModule.Loop = _loop;
        Interpreter.Initialize(install, MicaModule.Register);

        using var worker = Interpreter.ImportEmbedded("_mica_worker", "worker.py");
        using var workingDir = PyStr.New(_config.WorkingDir);
        using var argv0 = PyStr.New("mica");
        using var level = PyStr.New(_config.LogLevel);
        using (PyCall.Method(worker.Handle, "setup", workingDir.Handle, argv0.Handle, level.Handle)) { }

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
        if (iface is not ("asgi" or "asginl"))
            return new StartFailure("load", $"interface '{iface}' is not supported yet by this version of Mica (only asgi and asginl are)");

        using var loopKind = PyStr.New(_config.Loop);
        using var created = PyCall.Method(worker.Handle, "new_loop", loopKind.Handle);
        pyLoop = PyRef.Steal(Py.SequenceGetItem(created.Handle, 0));
        using var loopName = PyRef.Steal(Py.SequenceGetItem(created.Handle, 1));
        Log.Info($"Python {install.Version} ({install.Executable}), {PyStr.ToManaged(loopName.Handle)} event loop, interface {iface}");

        using var asgi = Interpreter.ImportEmbedded("_mica_asgi", "asgi.py");
        var (server, lifespanFailure) = AsgiServer.Start(_loop, _drain, _config with { Interface = iface }, worker.Handle, asgi.Handle, pyLoop.Handle, app);
        if (lifespanFailure is not null)
            return new StartFailure("lifespan", $"lifespan startup failed: {lifespanFailure}");
        _server = server;

        using var mica = PyRef.Steal(Py.ImportModule(PyStr.Utf8Z("_mica")));
        using var drain = PyRef.Steal(Py.GetAttrString(mica.Handle, PyStr.Utf8Z("drain")));
        using var fd = PyRef.Steal(Py.LongFromLong(_loop.EventFd));
        using (PyCall.Method(pyLoop.Handle, "add_reader", fd.Handle, drain.Handle)) { }
        return null;
    }
}
