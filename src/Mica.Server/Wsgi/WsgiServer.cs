using Mica.Server.Hosting;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mica.Server.Wsgi;

/// <summary>
/// Serves one WSGI app in this worker: Kestrel calls it per request, and the <see cref="WsgiThreadPool"/>
/// runs the app. Python's main thread, having loaded the app, only waits (GIL released) for shutdown.
/// </summary>
internal sealed unsafe class WsgiServer : IHttpApplication<WsgiExchange>, IAppServer
{
    /// <summary>The worker's one WSGI server, for the <c>_mica</c> entry points.</summary>
    public static WsgiServer? Current { get; private set; }

    public ExchangeServices Services { get; }
    public WsgiThreadPool Pool { get; }
    public HandleTable<WsgiExchange> Handles { get; } = new();
    public string Description { get; }

    // Owned for the worker's life.
    public nint App { get; }
    public nint RunFunction { get; }
    public nint EmptyBytes { get; }
    /// <summary><c>_mica_wsgi.RequestBodyError</c>, raised by a failed read of the request body.</summary>
    public nint RequestBodyError { get; }
    private readonly nint _errors, _fileWrapper;

    private readonly ManualResetEventSlim _stop = new();
    private readonly TimeSpan _stopWait;

    /// <summary>Python's main thread, GIL held.</summary>
    public WsgiServer(ExchangeServices services, WorkerConfig config, nint app)
    {
        Services = services;
        App = PyRef.NewReference(app);
        using var wsgi = Interpreter.ImportEmbedded("_mica_wsgi", "wsgi.py");
        RunFunction = PyRef.Check(Py.GetAttrString(wsgi.Handle, PyStr.Utf8Z("run")));
        var errors = PyCall.Method(wsgi.Handle, "Errors");
        _errors = errors.Release();
        _fileWrapper = PyRef.Check(Py.GetAttrString(wsgi.Handle, PyStr.Utf8Z("FileWrapper")));
        RequestBodyError = PyRef.Check(Py.GetAttrString(wsgi.Handle, PyStr.Utf8Z("RequestBodyError")));
        var empty = PyStr.Bytes([]);
        EmptyBytes = empty.Release();

        var threads = config.BlockingThreads ?? Math.Max(1, config.Backpressure / 2);
        var prefix = config.UrlPathPrefix;
        var multiprocess = config.Workers > 1;
        var unixSocket = config.UnixSocket;
        Pool = new WsgiThreadPool(threads, TimeSpan.FromSeconds(config.BlockingThreadsIdleTimeoutSeconds),
            () => new WsgiEnviron(prefix, unixSocket, multiprocess, _errors, _fileWrapper), measure: services.Metrics is not null);
        Description = $", up to {threads} WSGI threads";
        _stopWait = TimeSpan.FromSeconds(config.ShutdownTimeoutSeconds);
        Current = this;
    }

    public Task<KestrelServer> ListenAsync(WorkerConfig config) => KestrelHost.StartAsync(config, this, Services.Drain, Services.ConnectionLimit);

    public void Serve()
    {
        using (GilRelease.Begin())
        {
            _stop.Wait();
            Pool.Stop(_stopWait);
        }
    }

    public void BeginShutdown() => _stop.Set();

    public Metrics.BlockingStats Blocking => Pool.Stats();

    public WsgiExchange CreateContext(IFeatureCollection contextFeatures) => new(this, contextFeatures);

    public Task ProcessRequestAsync(WsgiExchange context) => context.TryRefuse() ?? context.TryServeStatic() ?? context.RunAsync();

    public void DisposeContext(WsgiExchange context, Exception? exception) => context.Completed();
}
