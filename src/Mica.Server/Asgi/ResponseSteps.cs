using System.Threading.Tasks.Sources;

namespace Mica.Server.Asgi;

internal enum StepKind
{
    /// <summary>A body chunk with more to come; the app's send() waits until it is flushed.</summary>
    Chunk,
    /// <summary>The last body chunk: the response is complete.</summary>
    Final,
    /// <summary>The app failed: 500 if nothing was sent yet, else abort the connection.</summary>
    Fail,
}

/// <summary>
/// One thing the app asked to send. <see cref="Status"/> and <see cref="Headers"/> are set on the
/// first step only (that is when the response starts). Buffers are rented from the shared pool.
/// </summary>
internal readonly record struct ResponseStep(StepKind Kind, int Status, byte[]? Headers, int HeadersLength, byte[]? Body, int BodyLength);

/// <summary>
/// The steps of one response, from the Python thread (producer) to the request's Kestrel task
/// (the single consumer). Reusable awaiting without allocation; continuations run on the thread
/// pool, never on the Python thread.
/// </summary>
internal sealed class ResponseSteps : IValueTaskSource<ResponseStep>
{
    private ManualResetValueTaskSourceCore<ResponseStep> _core = new() { RunContinuationsAsynchronously = true };
    private readonly Queue<ResponseStep> _queued = new(2);
    private readonly Lock _lock = new();
    private bool _waiting;

    public void Add(ResponseStep step)
    {
        lock (_lock)
        {
            if (_waiting)
            {
                _waiting = false;
                _core.SetResult(step);
            }
            else
            {
                _queued.Enqueue(step);
            }
        }
    }

    public ValueTask<ResponseStep> NextAsync()
    {
        lock (_lock)
        {
            if (_queued.TryDequeue(out var step)) return new ValueTask<ResponseStep>(step);
            _core.Reset();
            _waiting = true;
            return new ValueTask<ResponseStep>(this, _core.Version);
        }
    }

    public ResponseStep GetResult(short token) => _core.GetResult(token);
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _core.OnCompleted(continuation, state, token, flags);
}
