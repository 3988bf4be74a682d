using System.IO.Pipes;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Mica.Server.Hosting;

/// <summary>
/// A worker process: <c>mica __worker FROM_MASTER_FD TO_MASTER_FD</c>, started by the master only.
/// Reads its <see cref="WorkerConfig"/> from the master, starts Python and Kestrel, reports
/// ready or failed, and stops gracefully on SIGTERM/SIGINT/SIGQUIT or when the master goes away.
/// </summary>
public static class WorkerProgram
{
    public const string Command = "__worker";

    /// <summary>How long a stopping worker waits for its clients to finish with their connections.</summary>
    private const double DrainLimitSeconds = 5;

    public static int Run(string fromMasterHandle, string toMasterHandle)
    {
        using var fromMaster = new AnonymousPipeClientStream(PipeDirection.In, fromMasterHandle);
        using var toMaster = new AnonymousPipeClientStream(PipeDirection.Out, toMasterHandle);
        var config = ReadConfig(fromMaster);
        LogFormatter.ProcessName = $"worker-{config.WorkerId}";
        Log.Configure(config.LogConfig is { } json ? LogConfig.Parse(json) : LogConfig.Default, Log.Parse(config.LogLevel));
        if (config.RuntimeBlockingThreads is { } blocking)
        {
            var most = Math.Max(blocking, Environment.ProcessorCount);
            ThreadPool.SetMaxThreads(most, most);
            ThreadPool.GetMaxThreads(out var workers, out _);
            Log.Debug($"thread pool: at most {workers} threads (--runtime-blocking-threads {blocking})");
        }
        if (config.ProcessName is { } name) ProcessName.Set(Mica.Server.ProcessName.ForWorker(name, config.WorkerId));
        return RunAsync(config, fromMaster, toMaster).GetAwaiter().GetResult();
    }

    private static WorkerConfig ReadConfig(Stream fromMaster)
    {
        // One line of JSON; read byte by byte so nothing after it is consumed by a buffer.
        var line = new List<byte>();
        int b;
        while ((b = fromMaster.ReadByte()) is not (-1 or '\n')) line.Add((byte)b);
        return JsonSerializer.Deserialize(line.ToArray(), ControlJson.Default.WorkerConfig)
            ?? throw new InvalidOperationException("no worker configuration from the master");
    }

    private static async Task<int> RunAsync(WorkerConfig config, Stream fromMaster, Stream toMaster)
    {
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStopSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStopSignal);
        using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnStopSignal);
        Http.AccessLog? accessLog = null;
        // The master forwards SIGUSR1 (log files moved away by logrotate); SIGUSR2 means nothing here.
        using var reopen = PosixSignalRegistration.Create((PosixSignal)Native.Libc.SIGUSR1, context =>
        {
            context.Cancel = true;
            Log.Reopen();
            accessLog?.Reopen();
        });
        using var ignored = PosixSignalRegistration.Create((PosixSignal)Native.Libc.SIGUSR2, context => context.Cancel = true);
        _ = WatchMasterAsync(fromMaster, stop);

        var drain = new ConnectionDrain();
        var staticFiles = config.StaticMounts.Count > 0
            ? new Http.StaticFiles(config.StaticMounts, config.StaticDirToFile, config.StaticExpiresSeconds)
            : null;
        var accessDestination = config.LogConfig is { } logConfig ? LogConfig.ParseAccess(logConfig) : LogConfig.AccessDefault;
        accessLog = config.AccessLogFormat is { } format && accessDestination.Level is not > LogLevel.Info
            ? new Http.AccessLog(Http.AccessLogFormat.Parse(format), accessDestination)
            : null;
        var forwarding = new Http.ForwardedHeaders(config.ProxyHeaders ? Http.TrustedProxies.Parse(config.ForwardedAllowIps) : null);
        var metrics = config.MetricsIntervalSeconds is null ? null : new Metrics.WorkerMetrics();
        var connectionLimit = config.Limits.Connections is { } max ? new ConnectionLimit(max, http2Only: config.Http == "2") : null;
        var python = new PythonHost(config, new Http.ExchangeServices(drain, config.KeepAlive, config.Backpressure, staticFiles, accessLog, forwarding,
            connectionLimit, metrics));
        python.Start();
        var failure = await python.Started;
        if (failure is not null)
        {
            Send(toMaster, new WorkerMessage { Event = WorkerMessage.Failed, Reason = failure.Reason, Message = failure.Message, Traceback = failure.Traceback });
            return 1;
        }

        var kestrel = await python.Server.ListenAsync(config);
        Send(toMaster, new WorkerMessage { Event = WorkerMessage.Ready });
        var reporting = metrics is null ? Task.CompletedTask : ReportMetricsAsync(toMaster, Report, TimeSpan.FromSeconds(config.MetricsIntervalSeconds!.Value), stop.Task);
        await stop.Task;

        // Drain HTTP first (in-flight requests need the app's threads), then stop the app.
        drain.BeginDrain();
        await drain.WaitUntilQuietAsync(TimeSpan.FromSeconds(Math.Min(DrainLimitSeconds, config.ShutdownTimeoutSeconds)));
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(config.ShutdownTimeoutSeconds)))
            await kestrel.StopAsync(timeout.Token);
        python.BeginShutdown();
        await Task.WhenAny(python.Stopped, Task.Delay(TimeSpan.FromSeconds(config.ShutdownTimeoutSeconds)));
        kestrel.Dispose();
        accessLog?.Complete();
        // The last word: what was counted since the last report, so the master's totals miss nothing.
        await reporting;
        if (metrics is not null)
        {
            try { Send(toMaster, Report()); }
            catch (IOException) { }   // the master is gone: nobody to tell
        }
        return 0;

        WorkerMessage Report() => new() { Event = WorkerMessage.Metrics, Report = metrics!.Snapshot(drain.Connections, python.Server.Blocking) };

        void OnStopSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.TrySetResult();
        }
    }

    /// <summary>The master never closes its end while it lives: end of stream means it is gone.</summary>
    private static async Task WatchMasterAsync(Stream fromMaster, TaskCompletionSource stop)
    {
        var buffer = new byte[64];
        try
        {
            while (await fromMaster.ReadAsync(buffer) > 0) { }
        }
        catch (IOException) { }
        stop.TrySetResult();
    }

    /// <summary>
    /// <c>--metrics</c>: a report now (so that the master shows the worker at once) and then every
    /// interval, until the worker stops.
    /// </summary>
    private static async Task ReportMetricsAsync(Stream toMaster, Func<WorkerMessage> report, TimeSpan interval, Task stopping)
    {
        while (!stopping.IsCompleted)
        {
            try { Send(toMaster, report()); }
            catch (IOException) { return; }   // the master is gone; the worker is stopping anyway
            await Task.WhenAny(stopping, Task.Delay(interval));
        }
    }

    private static readonly Lock SendLock = new();

    /// <summary>One message, one line, written whole (any thread).</summary>
    private static void Send(Stream toMaster, WorkerMessage message)
    {
        var json = JsonSerializer.Serialize(message, ControlJson.Default.WorkerMessage);
        var line = Encoding.UTF8.GetBytes(json + "\n");
        lock (SendLock)
        {
            toMaster.Write(line);
            toMaster.Flush();
        }
    }
}
