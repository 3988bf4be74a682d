using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting;
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
    public static async Task<KestrelServer> StartAsync<TContext>(WorkerConfig config, IHttpApplication<TContext> application, ConnectionDrain drain,
        ConnectionLimit? connectionLimit)
        where TContext : notnull
    {
        ILoggerFactory loggers = NullLoggerFactory.Instance;
        var options = new KestrelServerOptions
        {
            AddServerHeader = false,
            // Cleartext HTTP/2 connections carry CleartextHttp2's TLS mark, so their ":scheme: http"
            // must not be refused as a mismatch.
            AllowAlternateSchemes = true,
            // Header values go out as the app's bytes: latin-1 (PEP 3333's header text, and ASGI's
            // bytes decoded one char per byte), which Kestrel's default refuses beyond ASCII.
            ResponseHeaderEncodingSelector = static _ => System.Text.Encoding.Latin1,
            // And request header values come in one char per byte, so the app gets the bytes the
            // client sent (ASGI's bytes, PEP 3333's latin-1 text), not Kestrel's UTF-8 reading of them
            // (which refuses a latin-1 byte with a 400).
            RequestHeaderEncodingSelector = static _ => System.Text.Encoding.Latin1,
            ApplicationServices = Services(loggers),
        };
        options.Limits.RequestHeadersTimeout = TimeSpan.FromMilliseconds(config.HeaderReadTimeoutMs);
        // --http1-buffer-size bounds the buffered input; Kestrel wants the head limits within it.
        options.Limits.MaxRequestBufferSize = config.Http1BufferSize;
        ApplyLimits(options.Limits, config.Limits, config.Http1BufferSize);
        ApplyHttp2Limits(options.Limits.Http2, config.Http2);
        var https = config.Tls is { } tls ? TlsSetup.Load(tls) : null;
        options.ListenHandle((ulong)config.ListenFd, listen =>
        {
            listen.Protocols = config.Http switch
            {
                "1" => HttpProtocols.Http1,
                "2" => HttpProtocols.Http2,
                _ => HttpProtocols.Http1AndHttp2,
            };
            listen.Use(drain.Count(tls: https is not null));
            if (https is not null)
            {
                listen.UseHttps(https);                    // ALPN picks h2 or http/1.1
                listen.Use(ConnectionDrain.HandshakeDone);
            }
            else if (config.Http == "auto") listen.Use(CleartextHttp2.Detect(options.Limits.KeepAliveTimeout, options.Limits.RequestHeadersTimeout));  // preface or h2c upgrade
            if (connectionLimit is not null) listen.Use(connectionLimit.Enforce);
        });

        // Inline scheduling: Kestrel parses and writes on the socket's own I/O thread instead of
        // hopping to the thread pool. Safe here because the app never runs on these threads (it runs
        // on the Python thread), and it halves the thread hand-offs per request (measured in bench/).
        var sockets = new SocketTransportFactory(Options.Create(new SocketTransportOptions { UnsafePreferInlineScheduling = true }), loggers);
        var server = new KestrelServer(Options.Create(options), new ConnectionDrain.Transport(sockets, drain), loggers);
        await server.StartAsync(application, CancellationToken.None);
        return server;
    }

    /// <summary>
    /// What Kestrel asks its application services for. UseHttps wants Kestrel's metrics object, which
    /// the web host registers through an internal type; without a web host it is registered here.
    /// </summary>
    private static ServiceProvider Services(ILoggerFactory loggers)
    {
        var services = new ServiceCollection().AddSingleton(loggers).AddMetrics();
        // A literal assembly-qualified name, so that trimming (the single-file build) sees and keeps the type.
        var metrics = Type.GetType("Microsoft.AspNetCore.Server.Kestrel.Core.Internal.Infrastructure.KestrelMetrics, Microsoft.AspNetCore.Server.Kestrel.Core", throwOnError: true)!;
        services.AddSingleton(metrics);
        return services.BuildServiceProvider();
    }

    /// <summary>The <c>--limit-*</c>, <c>--timeout-keep-alive</c> and <c>--min-*-rate</c> options, onto Kestrel's limits.</summary>
    private static void ApplyLimits(KestrelServerLimits kestrel, Limits limits, int bufferSize)
    {
        kestrel.MaxRequestLineSize = Math.Min(limits.RequestLine, bufferSize);
        kestrel.MaxRequestHeaderCount = limits.RequestFields;
        kestrel.MaxRequestHeadersTotalSize = Math.Min(limits.RequestFieldsSize, bufferSize);
        // Unlimited unless asked: Python apps decide how much body they accept (Granian sets no
        // limit either), and Kestrel's own 30 MB default must not apply.
        kestrel.MaxRequestBodySize = limits.RequestBody;
        kestrel.KeepAliveTimeout = TimeSpan.FromSeconds(limits.KeepAliveTimeoutSeconds);
        kestrel.MinRequestBodyDataRate = limits.MinRequestBodyRate > 0 ? new MinDataRate(limits.MinRequestBodyRate, Limits.RateGrace) : null;
        kestrel.MinResponseDataRate = limits.MinResponseRate > 0 ? new MinDataRate(limits.MinResponseRate, Limits.RateGrace) : null;
    }

    /// <summary>Granian's <c>--http2-*</c> options, onto Kestrel's HTTP/2 limits (within the ranges Kestrel accepts).</summary>
    private static void ApplyHttp2Limits(Http2Limits limits, Http2Settings settings)
    {
        const int minWindow = 65_535;   // RFC 9113's initial window; Kestrel accepts nothing smaller
        limits.MaxStreamsPerConnection = settings.MaxConcurrentStreams;
        limits.InitialConnectionWindowSize = Math.Max(minWindow, settings.InitialConnectionWindowSize);
        limits.InitialStreamWindowSize = Math.Max(minWindow, settings.InitialStreamWindowSize);
        limits.MaxFrameSize = settings.MaxFrameSize;
        limits.MaxRequestHeaderFieldSize = settings.MaxHeadersSize;
        if (settings.KeepAliveIntervalMs is { } interval) limits.KeepAlivePingDelay = TimeSpan.FromMilliseconds(interval);
        limits.KeepAlivePingTimeout = TimeSpan.FromSeconds(settings.KeepAliveTimeoutSeconds);
    }
}
