using Mica.Server.Hosting;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.WebSockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Mica.Server.Asgi;

/// <summary>
/// Serves one ASGI app in this worker: Kestrel calls it per request (<see cref="IHttpApplication{TContext}"/>),
/// and it holds the Python objects every request needs. Created on the Python thread, which then runs
/// the event loop (<see cref="Serve"/>) fed by the <see cref="PythonLoop"/> hand-off.
/// </summary>
internal sealed unsafe class AsgiServer : IHttpApplication<AsgiExchange>, IAppServer, IPythonWork
{
    /// <summary>The worker's one ASGI server, for the <c>_mica</c> entry points.</summary>
    public static AsgiServer? Current { get; private set; }

    public PythonLoop Loop { get; } = new();
    public ExchangeServices Services { get; }
    public HandleTable<AsgiExchange> Handles { get; } = new();
    public AsgiScope Scope { get; }
    public string Description { get; }

    // Owned for the worker's life.
    public nint DispatchFunction { get; }
    public nint WebSocketDispatchFunction { get; }
    private nint ResolveFunction { get; }
    public nint EmptyBytes { get; }
    /// <summary>
    /// The state dict copied into each scope: lifespan's, or an empty one without lifespan (Granian
    /// always sets <c>state</c>).
    /// </summary>
    public nint State { get; private set; }
    private readonly nint _lifespan;
    private readonly WebSocketMiddleware? _webSockets;   // null with --no-ws: upgrade requests reach the app as http
    private readonly nint _asgiModule, _workerModule, _pyLoop;

    private AsgiServer(ExchangeServices services, WorkerConfig config, nint workerModule, nint asgiModule, nint app)
    {
        Services = services;
        Scope = new AsgiScope(config.UrlPathPrefix, config.UnixSocket, config.Tls is { } tls ? TlsSetup.CertificatePem(tls) : null);
        _workerModule = PyRef.NewReference(workerModule);
        _asgiModule = PyRef.NewReference(asgiModule);

        using var loopKind = PyStr.New(config.Loop);
        using var created = PyCall.Method(workerModule, "new_loop", loopKind.Handle);
        _pyLoop = PyRef.Check(Py.SequenceGetItem(created.Handle, 0));
        using var loopName = PyRef.Steal(Py.SequenceGetItem(created.Handle, 1));
        Description = $", {PyStr.ToManaged(loopName.Handle)} event loop";

        var empty = PyStr.Bytes([]);
        EmptyBytes = empty.Release();
        State = PyRef.Check(Py.DictNew());
        ResolveFunction = PyRef.Check(Py.GetAttrString(workerModule, PyStr.Utf8Z("resolve")));
        var dispatch = PyCall.Method(asgiModule, "http_dispatcher", app, _pyLoop);
        DispatchFunction = dispatch.Release();
        var wsDispatch = PyCall.Method(asgiModule, "websocket_dispatcher", app, _pyLoop);
        WebSocketDispatchFunction = wsDispatch.Release();
        if (config.WebSockets)
            _webSockets = new WebSocketMiddleware(static context => context.Features.GetRequiredFeature<AsgiExchange>().RunAsync(),
                Options.Create(new Microsoft.AspNetCore.Builder.WebSocketOptions()), NullLoggerFactory.Instance);
        if (config.Interface != "asginl")
        {
            var lifespan = PyCall.Method(asgiModule, "Lifespan", app, _pyLoop);
            _lifespan = lifespan.Release();
        }
    }

    /// <summary>
    /// Python's main thread: creates the server and its event loop, and runs lifespan startup;
    /// returns the startup failure message, if any.
    /// </summary>
    public static (AsgiServer Server, string? Failure) Start(ExchangeServices services, WorkerConfig config, nint workerModule, nint app)
    {
        using var asgi = Interpreter.ImportEmbedded("_mica_asgi", "asgi.py");
        var server = new AsgiServer(services, config, workerModule, asgi.Handle, app);
        Current = server;
        MicaModule.Loop = server.Loop;
        if (server._lifespan != 0)
        {
            using var startup = PyCall.Method(server._lifespan, "startup");
            using var failure = PyCall.Method(server._pyLoop, "run_until_complete", startup.Handle);
            if (failure.Handle != Py.None) return (server, PyStr.Of(failure.Handle));
            using var supported = PyRef.Steal(Py.GetAttrString(server._lifespan, PyStr.Utf8Z("supported")));
            if (Py.ObjectIsTrue(supported.Handle) == 1)
            {
                Py.DecRef(server.State);
                server.State = PyRef.Check(Py.GetAttrString(server._lifespan, PyStr.Utf8Z("state")));
            }
        }

        using var mica = PyRef.Steal(Py.ImportModule(PyStr.Utf8Z("_mica")));
        using var drain = PyRef.Steal(Py.GetAttrString(mica.Handle, PyStr.Utf8Z("drain")));
        using var fd = PyRef.Steal(Py.LongFromLong(server.Loop.EventFd));
        using (PyCall.Method(server._pyLoop, "add_reader", fd.Handle, drain.Handle)) { }
        return (server, null);
    }

    /// <summary>
    /// Python thread: completes a future an app awaits (unless it was cancelled meanwhile) and
    /// drops the caller's reference to it.
    /// </summary>
    public unsafe void Resolve(nint future, nint value)
    {
        try
        {
            var args = stackalloc nint[2] { future, value };
            var result = Py.Vectorcall(ResolveFunction, args, 2, 0);
            if (result == 0) throw PythonException.Fetch();
            Py.DecRef(result);
        }
        finally
        {
            Py.DecRef(future);
        }
    }

    public Task<KestrelServer> ListenAsync(WorkerConfig config) => KestrelHost.StartAsync(config, this, Services.Drain);

    public void Serve()
    {
        using (PyCall.Method(_pyLoop, "run_forever")) { }
    }

    public void BeginShutdown() => Loop.Post(this, 0);

    /// <summary>Python thread: lifespan shutdown, then the event loop stops.</summary>
    public void RunOnPythonThread(int kind)
    {
        using var shutdown = _lifespan != 0
            ? PyCall.Method(_lifespan, "shutdown")
            : PyCall.Method(_asgiModule, "nothing");
        using var _ = PyCall.Method(_workerModule, "stop_after", _pyLoop, shutdown.Handle);
    }

    public AsgiExchange CreateContext(IFeatureCollection contextFeatures) => new(this, contextFeatures);

    /// <summary>
    /// An upgrade request goes through ASP.NET's websocket middleware first: it validates the
    /// handshake and gives the request a websocket feature (permessage-deflate included, and
    /// HTTP/2's extended CONNECT), which the app's accept then uses.
    /// </summary>
    public Task ProcessRequestAsync(AsgiExchange context) =>
        Services.StaticFiles?.TryServe(context.Features) ??
        (_webSockets is not null && context.MayUpgrade ? _webSockets.Invoke(context.AsHttpContext()) : context.RunAsync());

    public void DisposeContext(AsgiExchange context, Exception? exception)
    {
    }
}
