using Mica.Server.Hosting;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.WebSockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Mica.Server.EventLoop;

/// <summary>
/// Serves an async app (ASGI or RSGI) in this worker: Kestrel calls it per request
/// (<see cref="IHttpApplication{TContext}"/>), and it holds the Python objects every request needs.
/// Created on the Python thread, which then runs the asyncio event loop (<see cref="Serve"/>) fed by
/// the <see cref="PythonLoop"/> hand-off. The interfaces differ only in their scope, their Python
/// module (which turns <c>_mica</c>'s calls into the app's API) and how the app starts and stops.
/// </summary>
internal abstract unsafe class LoopServer : IHttpApplication<LoopExchange>, IAppServer, IPythonWork
{
    /// <summary>The worker's one event-loop server, for the <c>_mica</c> entry points.</summary>
    public static LoopServer? Current { get; private set; }

    public PythonLoop Loop { get; } = new();
    public ExchangeServices Services { get; }
    public HandleTable<LoopExchange> Handles { get; } = new();
    public string Description { get; }

    // Owned for the worker's life.
    /// <summary>The interface module's <c>dispatch(handle, scope, body, more_body)</c> for each request.</summary>
    public nint DispatchFunction { get; private set; }
    /// <summary>The interface module's <c>dispatch(handle, scope)</c> for each websocket handshake.</summary>
    public nint WebSocketDispatchFunction { get; private set; }
    public nint EmptyBytes { get; }
    protected nint PyLoop { get; }
    protected nint WorkerModule { get; }
    private readonly nint _resolveFunction;
    private readonly WebSocketMiddleware? _webSockets;   // null with --no-ws: upgrade requests reach the app as http
    private readonly LoopLagWatch _lagWatch;
    private readonly string _taskImpl;

    protected LoopServer(ExchangeServices services, WorkerConfig config, nint workerModule)
    {
        Services = services;
        _lagWatch = new LoopLagWatch(Loop);
        _taskImpl = config.TaskImpl;
        WorkerModule = PyRef.NewReference(workerModule);
        using var loopKind = PyStr.New(config.Loop);
        using var created = PyCall.Method(workerModule, "new_loop", loopKind.Handle);
        PyLoop = PyRef.Check(Py.SequenceGetItem(created.Handle, 0));
        using var loopName = PyRef.Steal(Py.SequenceGetItem(created.Handle, 1));
        Description = $", {PyStr.ToManaged(loopName.Handle)} event loop";

        var empty = PyStr.Bytes([]);
        EmptyBytes = empty.Release();
        _resolveFunction = PyRef.Check(Py.GetAttrString(workerModule, PyStr.Utf8Z("resolve")));
        if (config.WebSockets)
            _webSockets = new WebSocketMiddleware(static context => context.Features.GetRequiredFeature<LoopExchange>().RunAsync(),
                Options.Create(new Microsoft.AspNetCore.Builder.WebSocketOptions()), NullLoggerFactory.Instance);
    }

    /// <summary>
    /// Takes the interface module's dispatchers for <paramref name="app"/>:
    /// <c>http_dispatcher(app, loop, start)</c> and <c>websocket_dispatcher(app, loop, start)</c>,
    /// where <c>start(coro)</c> runs each request's coroutine as <c>--task-impl</c> says.
    /// </summary>
    protected void SetDispatchers(nint module, nint app)
    {
        using var start = RequestStarter();
        var dispatch = PyCall.Method(module, "http_dispatcher", app, PyLoop, start.Handle);
        DispatchFunction = dispatch.Release();
        var wsDispatch = PyCall.Method(module, "websocket_dispatcher", app, PyLoop, start.Handle);
        WebSocketDispatchFunction = wsDispatch.Release();
    }

    /// <summary><c>asyncio</c>: the loop's <c>create_task</c>; <c>rust</c>: a <c>DirectTask</c> (<c>direct_task.py</c>) per request.</summary>
    private PyRef RequestStarter()
    {
        if (_taskImpl != "rust") return PyRef.Steal(Py.GetAttrString(PyLoop, PyStr.Utf8Z("create_task")));
        using var direct = Interpreter.ImportEmbedded("_mica_direct_task", "direct_task.py");
        return PyCall.Method(direct.Handle, "starter", PyLoop);
    }

    /// <summary>Python thread: the server becomes the worker's, and the event loop starts watching the hand-off.</summary>
    protected void Activate()
    {
        Current = this;
        MicaModule.Loop = Loop;
        using var mica = PyRef.Steal(Py.ImportModule(PyStr.Utf8Z("_mica")));
        using var drain = PyRef.Steal(Py.GetAttrString(mica.Handle, PyStr.Utf8Z("drain")));
        using var fd = PyRef.Steal(Py.LongFromLong(Loop.EventFd));
        using (PyCall.Method(PyLoop, "add_reader", fd.Handle, drain.Handle)) { }
    }

    /// <summary>How the interface's apps give response headers.</summary>
    public abstract HeaderForm HeaderForm { get; }

    /// <summary>Python thread: the scope the app gets for this request (http, or a websocket handshake).</summary>
    public abstract PyRef BuildScope(IFeatureCollection features, bool websocket);

    /// <summary>Python thread: an awaitable that stops the app (ASGI: lifespan shutdown); the event loop stops once it is done.</summary>
    protected abstract PyRef StopApp();

    /// <summary>
    /// Python thread: completes a future an app awaits (unless it was cancelled meanwhile) and
    /// drops the caller's reference to it.
    /// </summary>
    public void Resolve(nint future, nint value)
    {
        try
        {
            var args = stackalloc nint[2] { future, value };
            var result = Py.Vectorcall(_resolveFunction, args, 2, 0);
            if (result == 0) throw PythonException.Fetch();
            Py.DecRef(result);
        }
        finally
        {
            Py.DecRef(future);
        }
    }

    /// <summary>Once the app has started: the loop is watched for stalls, and Kestrel serves.</summary>
    public Task<KestrelServer> ListenAsync(WorkerConfig config)
    {
        _lagWatch.Start();
        return KestrelHost.StartAsync(config, this, Services.Drain, Services.ConnectionLimit);
    }

    public virtual void Serve()
    {
        using (PyCall.Method(PyLoop, "run_forever")) { }
    }

    public void BeginShutdown()
    {
        _lagWatch.Stop();
        Loop.Post(this, 0);
    }

    /// <summary>One thread runs the app (Granian reports 1 for its async interfaces too); the queue is the hand-off's.</summary>
    public Metrics.BlockingStats Blocking => new(1, Loop.Pending);

    /// <summary>Python thread: the app stops, then the event loop.</summary>
    public void RunOnPythonThread(int kind)
    {
        using var stop = StopApp();
        using var _ = PyCall.Method(WorkerModule, "stop_after", PyLoop, stop.Handle);
    }

    public LoopExchange CreateContext(IFeatureCollection contextFeatures) => new(this, contextFeatures);

    /// <summary>
    /// An upgrade request goes through ASP.NET's websocket middleware first: it validates the
    /// handshake and gives the request a websocket feature (permessage-deflate included, and
    /// HTTP/2's extended CONNECT), which the app's accept then uses.
    /// </summary>
    public Task ProcessRequestAsync(LoopExchange context) =>
        context.TryRefuse() ?? context.TryServeStatic() ??
        (_webSockets is not null && context.MayUpgrade ? _webSockets.Invoke(context.AsHttpContext()) : context.RunAsync());

    public void DisposeContext(LoopExchange context, Exception? exception) => context.Completed();
}
