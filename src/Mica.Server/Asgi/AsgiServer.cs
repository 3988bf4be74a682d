using Mica.Server.Hosting;
using Mica.Server.Python;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Asgi;

/// <summary>
/// Serves one ASGI app in this worker: Kestrel calls it per request (<see cref="IHttpApplication{TContext}"/>),
/// and it holds the Python objects every request needs. Created on the Python thread.
/// </summary>
internal sealed unsafe class AsgiServer : IHttpApplication<AsgiExchange>
{
    /// <summary>The worker's one ASGI server, for the <c>_mica</c> entry points.</summary>
    public static AsgiServer? Current { get; private set; }

    public PythonLoop Loop { get; }
    public ConnectionDrain Drain { get; }
    /// <summary>Off with --no-http1-keep-alive, and for every response once the worker drains.</summary>
    public bool KeepAlive => _keepAlive && Drain.KeepAlive;
    private readonly bool _keepAlive;
    public HandleTable<AsgiExchange> Handles { get; } = new();
    public AsgiScope Scope { get; }

    // Owned for the worker's life.
    public nint DispatchFunction { get; }
    public nint ResolveFunction { get; }
    public nint EmptyBytes { get; }
    /// <summary>
    /// The state dict copied into each scope: lifespan's, or an empty one without lifespan (Granian
    /// always sets <c>state</c>).
    /// </summary>
    public nint State { get; private set; }
    private readonly nint _lifespan;
    private readonly nint _asgiModule, _workerModule, _loop;

    private AsgiServer(PythonLoop loop, ConnectionDrain drain, WorkerConfig config, nint workerModule, nint asgiModule, nint pyLoop, nint app)
    {
        Loop = loop;
        Drain = drain;
        _keepAlive = config.KeepAlive;
        Scope = new AsgiScope(config.UrlPathPrefix);
        _workerModule = PyRef.NewReference(workerModule);
        _asgiModule = PyRef.NewReference(asgiModule);
        _loop = PyRef.NewReference(pyLoop);
        var empty = PyStr.Bytes([]);
        EmptyBytes = empty.Release();
        State = PyRef.Check(Py.DictNew());
        ResolveFunction = PyRef.Check(Py.GetAttrString(workerModule, PyStr.Utf8Z("resolve")));
        var dispatch = PyCall.Method(asgiModule, "http_dispatcher", app, pyLoop);
        DispatchFunction = dispatch.Release();
        if (config.Interface != "asginl")
        {
            var lifespan = PyCall.Method(asgiModule, "Lifespan", app, pyLoop);
            _lifespan = lifespan.Release();
        }
    }

    /// <summary>Creates the server and runs lifespan startup; returns the startup failure message, if any.</summary>
    public static (AsgiServer Server, string? Failure) Start(PythonLoop loop, ConnectionDrain drain, WorkerConfig config, nint workerModule, nint asgiModule, nint pyLoop, nint app)
    {
        var server = new AsgiServer(loop, drain, config, workerModule, asgiModule, pyLoop, app);
        Current = server;
        if (server._lifespan == 0) return (server, null);

        using var startup = PyCall.Method(server._lifespan, "startup");
        using var failure = PyCall.Method(pyLoop, "run_until_complete", startup.Handle);
        if (failure.Handle != Py.None) return (server, PyStr.Of(failure.Handle));
        using var supported = PyRef.Steal(Py.GetAttrString(server._lifespan, PyStr.Utf8Z("supported")));
        if (Py.ObjectIsTrue(supported.Handle) == 1)
        {
            Py.DecRef(server.State);
            server.State = PyRef.Check(Py.GetAttrString(server._lifespan, PyStr.Utf8Z("state")));
        }
        return (server, null);
    }

    /// <summary>Python thread: run lifespan shutdown, then stop the event loop.</summary>
    public void BeginShutdown()
    {
        using var shutdown = _lifespan != 0
            ? PyCall.Method(_lifespan, "shutdown")
            : PyCall.Method(_asgiModule, "nothing");
        using var _ = PyCall.Method(_workerModule, "stop_after", _loop, shutdown.Handle);
    }

    public AsgiExchange CreateContext(IFeatureCollection contextFeatures) => new(this, contextFeatures);

    public Task ProcessRequestAsync(AsgiExchange context) => context.RunAsync();

    public void DisposeContext(AsgiExchange context, Exception? exception)
    {
    }
}
