using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Mica.Server.Hosting;

/// <summary>
/// Kestrel, built directly (no generic host: it costs start-up time and buys nothing here), serving
/// the listening socket the master bound and handed down.
/// </summary>
internal static class KestrelHost
{
    public static async Task<KestrelServer> StartAsync<TContext>(WorkerConfig config, IHttpApplication<TContext> application, ConnectionDrain drain)
        where TContext : notnull
    {
        ILoggerFactory loggers = NullLoggerFactory.Instance;
        var options = new KestrelServerOptions
        {
            AddServerHeader = false,
            ApplicationServices = new ServiceCollection().AddSingleton(loggers).BuildServiceProvider(),
        };
        options.Limits.RequestHeadersTimeout = TimeSpan.FromMilliseconds(config.HeaderReadTimeoutMs);
        // Python apps decide how much body they accept (Granian sets no limit either).
        options.Limits.MaxRequestBodySize = null;
        options.ListenHandle((ulong)config.ListenFd, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.Use(drain.Count);
        });

        // Inline scheduling: Kestrel parses and writes on the socket's own I/O thread instead of
        // hopping to the thread pool. Safe here because the app never runs on these threads (it runs
        // on the Python thread), and it halves the thread hand-offs per request (measured in bench/).
        var sockets = new SocketTransportFactory(Options.Create(new SocketTransportOptions { UnsafePreferInlineScheduling = true }), loggers);
        var server = new KestrelServer(Options.Create(options), new ConnectionDrain.Transport(sockets, drain), loggers);
        await server.StartAsync(application, CancellationToken.None);
        return server;
    }
}
