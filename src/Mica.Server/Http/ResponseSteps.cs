using System.Threading.Tasks.Sources;
using Microsoft.Win32.SafeHandles;

namespace Mica.Server.Http;

internal enum StepKind
{
    /// <summary>A body chunk with more to come; the app's send() waits until it is flushed.</summary>
    Chunk,
    /// <summary>The last body chunk: the response is complete.</summary>
    Final,
    /// <summary>The app failed: 500 if nothing was sent yet, else abort the connection.</summary>
    Fail,
    /// <summary>The rest of the response is a file (<see cref="ResponseStep.File"/>): the response is complete.</summary>
    File,
    /// <summary>
    /// Not a response step: the app is about to read a body the client holds back until
    /// <c>100 Continue</c>. Kestrel sends that on the first read unless the response has started;
    /// that check must not race the response being written, so it happens here, in order.
    /// </summary>
    Continue,
    /// <summary>Accept the websocket (subprotocol in <see cref="ResponseStep.Reason"/>, extra headers): the exchange becomes the socket.</summary>
    Upgrade,
}

/// <summary>A part of a regular file to send as the body; the handle is the response's own (a dup) and is closed once sent.</summary>
internal sealed record FileBody(SafeFileHandle Handle, long Offset, long Count);

/// <summary>
/// One thing the app asked to send. <see cref="Status"/>, <see cref="Reason"/> (WSGI's reason phrase;
/// null for Kestrel's) and <see cref="Headers"/> (see <see cref="HeaderBlock"/>) are set on the first
/// step only, when the response starts. The header buffer is rented from the shared pool.
/// </summary>
internal readonly record struct ResponseStep(StepKind Kind, int Status, byte[]? Headers, int HeadersLength, ResponseBody Body = default,
    string? Reason = null, FileBody? File = null)
{
    /// <summary>Gives back what the step holds (header buffer, body, file) once it is written or dropped; exactly once.</summary>
    public void Release()
    {
        if (Headers is not null) System.Buffers.ArrayPool<byte>.Shared.Return(Headers);
        Body.Release();
        File?.Handle.Dispose();
    }
}

/// <summary>
/// The steps of one response, from a Python thread (producer) to the request's Kestrel task
/// (the single consumer). Reusable awaiting without allocation.
/// </summary>
internal sealed class ResponseSteps : IValueTaskSource<ResponseStep>
{
    private ManualResetValueTaskSourceCore<ResponseStep> _core;
    private readonly Queue<ResponseStep> _queued = new(2);
    private readonly Lock _lock = new();
    private bool _waiting, _closed;

    /// <param name="handOff">
    /// Where the Kestrel task goes on with the step, if it is waiting for one: false, on the
    /// producing thread, at once (a WSGI thread writes the chunks of a streamed response itself,
    /// since it waits for them anyway; the event loop writes where that is cheaper than a thread
    /// hop, see <see cref="EventLoop.LoopExchange"/>); true, on the thread pool, while the producer
    /// goes on with other work.
    /// </param>
    /// <returns>False if the consumer has gone (<see cref="Close"/>): the step is released unsent.</returns>
    public bool Add(ResponseStep step, bool handOff = false)
    {
        lock (_lock)
        {
            if (_closed)
            {
                step.Release();
                return false;
            }
            if (_waiting)
            {
                _waiting = false;
                _core.RunContinuationsAsynchronously = handOff;
                _core.SetResult(step);
            }
            else
            {
                _queued.Enqueue(step);
            }
        }
        return true;
    }

    /// <summary>
    /// The consumer is done, normally or not: steps still queued, and any added later, are released
    /// unsent, so that nothing they hold (a Python object among them) outlives the request.
    /// </summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            while (_queued.TryDequeue(out var step)) step.Release();
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
