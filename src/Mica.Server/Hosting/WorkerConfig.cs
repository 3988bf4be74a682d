using System.Text.Json.Serialization;
using Mica.Server.Python;

namespace Mica.Server.Hosting;

/// <summary>
/// Everything a worker needs to know, sent by the master as the first line on the worker's control
/// pipe (JSON). Validated by the master; the worker trusts it.
/// </summary>
public sealed record WorkerConfig
{
    public required int WorkerId { get; init; }
    public required string Target { get; init; }
    public required string Interface { get; init; }       // auto | asgi | asginl | rsgi | wsgi
    public bool Factory { get; init; }
    public required string WorkingDir { get; init; }
    /// <summary>The interpreter to embed, as the master found it (<see cref="Python.Interpreter.Probe"/>).</summary>
    public required PythonInstall Python { get; init; }
    public string Loop { get; init; } = "auto";
    public required int ListenFd { get; init; }
    public string UrlPathPrefix { get; init; } = "";
    public int HeaderReadTimeoutMs { get; init; } = 30_000;
    public bool KeepAlive { get; init; } = true;
    public string LogLevel { get; init; } = "info";
    public double ShutdownTimeoutSeconds { get; init; } = 30;
    public string? ProcessName { get; init; }
    /// <summary>Worker processes in all (WSGI's <c>wsgi.multiprocess</c>).</summary>
    public int Workers { get; init; } = 1;
    /// <summary>Requests handed to the app at once, at most (<c>--backpressure</c>).</summary>
    public int Backpressure { get; init; } = 1024;
    /// <summary>WSGI threads at most; null: Granian's default, half the backpressure.</summary>
    public int? BlockingThreads { get; init; }
    public int BlockingThreadsIdleTimeoutSeconds { get; init; } = 30;
}

/// <summary>What a worker tells the master, one JSON object per line.</summary>
public sealed record WorkerMessage
{
    public const string Ready = "ready", Failed = "failed";

    public required string Event { get; init; }
    /// <summary>For <see cref="Failed"/>: load | lifespan | internal.</summary>
    public string? Reason { get; init; }
    public string? Message { get; init; }
    public string? Traceback { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(WorkerConfig))]
[JsonSerializable(typeof(PythonInstall))]
[JsonSerializable(typeof(WorkerMessage))]
public sealed partial class ControlJson : JsonSerializerContext;
