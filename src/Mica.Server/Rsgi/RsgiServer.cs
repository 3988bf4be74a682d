using Mica.Server.EventLoop;
using Mica.Server.Hosting;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Rsgi;

/// <summary>
/// An RSGI app on the worker's event loop: scopes are <c>mica.rsgi.Scope</c> records
/// (<see cref="RsgiScope"/>), requests go through rsgi.py's protocol objects, and the app's
/// <c>__rsgi_init__(loop)</c> and <c>__rsgi_del__(loop)</c> run before the loop starts and after it
/// stops, as the spec says.
/// </summary>
internal sealed unsafe class RsgiServer : LoopServer
{
    /// <summary>The embedded module that is <c>mica.rsgi</c>; imported before the app, which may import it.</summary>
    public const string ModuleName = "mica.rsgi";

    private readonly RsgiScope _scope;
    private readonly nint _deleteHook;   // the app's __rsgi_del__, or 0

    private RsgiServer(ExchangeServices services, WorkerConfig config, nint workerModule, nint rsgiModule, nint app, nint deleteHook)
        : base(services, config, workerModule)
    {
        _scope = new RsgiScope(config.UnixSocket);
        _deleteHook = deleteHook == Py.None ? 0 : PyRef.NewReference(deleteHook);
        SetDispatchers(rsgiModule, app);
    }

    /// <summary>
    /// Python's main thread: creates the server and its event loop, and calls the app's
    /// <c>__rsgi_init__</c>; returns its failure (message and traceback), if any.
    /// </summary>
    public static (RsgiServer Server, PythonException? Failure) Start(ExchangeServices services, WorkerConfig config, nint workerModule, nint target)
    {
        using var rsgi = PyRef.Steal(Py.ImportModule(PyStr.Utf8Z(ModuleName)));
        using var callbacks = PyCall.Method(rsgi.Handle, "callbacks", target);
        using var app = PyRef.Steal(Py.SequenceGetItem(callbacks.Handle, 0));
        using var init = PyRef.Steal(Py.SequenceGetItem(callbacks.Handle, 1));
        using var delete = PyRef.Steal(Py.SequenceGetItem(callbacks.Handle, 2));
        var server = new RsgiServer(services, config, workerModule, rsgi.Handle, app.Handle, delete.Handle);
        if (init.Handle != Py.None)
        {
            try { using (PyCall.Call(init.Handle, server.PyLoop)) { } }
            catch (PythonException e) { return (server, e); }
        }
        server.Activate();
        return (server, null);
    }

    public override HeaderForm HeaderForm => HeaderForm.Utf8Text;

    public override PyRef BuildScope(IFeatureCollection features, bool websocket) => _scope.Build(features, websocket);

    protected override PyRef StopApp() => PyCall.Method(WorkerModule, "nothing");

    /// <summary>Serves until shutdown, then calls the app's <c>__rsgi_del__</c> with the loop stopped.</summary>
    public override void Serve()
    {
        base.Serve();
        if (_deleteHook == 0) return;
        try { using (PyCall.Call(_deleteHook, PyLoop)) { } }
        catch (PythonException e) { Log.Error($"__rsgi_del__ failed: {e.Message}\n{e.Traceback}"); }
    }
}
