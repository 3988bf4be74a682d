using Mica.Server.EventLoop;
using Mica.Server.Hosting;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Asgi;

/// <summary>
/// An ASGI app on the worker's event loop: scopes are ASGI dicts (<see cref="AsgiScope"/>), requests
/// go through asgi.py's receive/send, and the app starts and stops with the lifespan protocol
/// (skipped for <c>asginl</c>).
/// </summary>
internal sealed unsafe class AsgiServer : LoopServer
{
    private readonly AsgiScope _scope;
    /// <summary>
    /// The state dict copied into each scope: lifespan's, or an empty one without lifespan (Granian
    /// always sets <c>state</c>).
    /// </summary>
    private nint _state;
    private readonly nint _lifespan;

    private AsgiServer(ExchangeServices services, WorkerConfig config, nint workerModule, nint asgiModule, nint app)
        : base(services, config, workerModule)
    {
        _scope = new AsgiScope(config.UrlPathPrefix, config.UnixSocket, config.Tls is { } tls ? TlsSetup.CertificatePem(tls) : null);
        _state = PyRef.Check(Py.DictNew());
        SetDispatchers(asgiModule, app);
        if (config.Interface != "asginl")
        {
            var lifespan = PyCall.Method(asgiModule, "Lifespan", app, PyLoop);
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
        if (server._lifespan != 0)
        {
            using var startup = PyCall.Method(server._lifespan, "startup");
            using var failure = PyCall.Method(server.PyLoop, "run_until_complete", startup.Handle);
            if (failure.Handle != Py.None) return (server, PyStr.Of(failure.Handle));
            using var supported = PyRef.Steal(Py.GetAttrString(server._lifespan, PyStr.Utf8Z("supported")));
            if (Py.ObjectIsTrue(supported.Handle) == 1)
            {
                Py.DecRef(server._state);
                server._state = PyRef.Check(Py.GetAttrString(server._lifespan, PyStr.Utf8Z("state")));
            }
        }
        server.Activate();
        return (server, null);
    }

    public override HeaderForm HeaderForm => HeaderForm.Bytes;

    public override PyRef BuildScope(IFeatureCollection features, bool websocket) => _scope.Build(features, _state, websocket);

    protected override PyRef StopApp() => _lifespan != 0
        ? PyCall.Method(_lifespan, "shutdown")
        : PyCall.Method(WorkerModule, "nothing");
}
