using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Mica.Server.Hosting;

/// <summary>Serves the loaded app over its interface in this worker: ASGI, RSGI or WSGI.</summary>
internal interface IAppServer
{
    /// <summary>For the start-up log line, e.g. ", uvloop event loop".</summary>
    string Description { get; }

    /// <summary>Starts Kestrel with this server as its application.</summary>
    Task<KestrelServer> ListenAsync(WorkerConfig config);

    /// <summary>Python's main thread, GIL held: serves until <see cref="BeginShutdown"/>, then stops the app.</summary>
    void Serve();

    /// <summary>Any thread, once Kestrel has stopped: makes <see cref="Serve"/> return.</summary>
    void BeginShutdown();

    /// <summary>Any thread, for <c>--metrics</c>: the threads that run the app and the work waiting for them.</summary>
    Metrics.BlockingStats Blocking { get; }
}
