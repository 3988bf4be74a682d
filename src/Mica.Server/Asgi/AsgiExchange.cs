using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Mica.Server.Hosting;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Asgi;

/// <summary>
/// One HTTP request in flight between Kestrel and the ASGI app.
///
/// Two parties touch it: the request's Kestrel task (<see cref="RunAsync"/>: reads the request,
/// writes the response) and the Python thread (builds the scope, answers the app's receive/send).
/// They meet in two places only: <see cref="PythonLoop.Post"/> (Kestrel → Python) and
/// <see cref="ResponseSteps"/> (Python → Kestrel). Python objects are touched on the Python thread
/// only; Kestrel's features are never touched by Python once the response is complete, because
/// Kestrel reuses them for the connection's next request.
/// </summary>
internal sealed class AsgiExchange(AsgiServer server, IFeatureCollection features) : IPythonWork
{
    private readonly AsgiServer _server = server;
    // Work kinds posted to the Python thread.
    private const int Dispatch = 0, BodyRead = 1, Aborted = 2, Flushed = 3;

    private static readonly byte[] InternalServerError = "Internal Server Error"u8.ToArray();

    private readonly IHttpRequestFeature _request = features.GetRequiredFeature<IHttpRequestFeature>();
    private readonly IHttpResponseFeature _response = features.GetRequiredFeature<IHttpResponseFeature>();
    private readonly IHttpResponseBodyFeature _responseBody = features.GetRequiredFeature<IHttpResponseBodyFeature>();
    private readonly IHttpRequestLifetimeFeature _lifetime = features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
    private readonly ResponseSteps _steps = new();

    // Request body: read on either side, consumed (copied to Python bytes) on the Python thread.
    private PipeReader BodyReader => features.GetRequiredFeature<IRequestBodyPipeFeature>().Reader;
    private ReadResult _read;
    private bool _hasRead, _readFailed, _bodyComplete;
    private Task? _readInFlight;
    private volatile bool _flushOk;

    // Python thread only.
    private long _handle;
    private nint _pendingReceive, _pendingDisconnect, _pendingFlush;   // owned references to futures
    private bool _disconnected, _sentFinal;

    // ---------------------------------------------------------------- Kestrel side

    public async Task RunAsync()
    {
        _server.Drain.RequestStarted();
        var broken = false;   // once the response failed, the remaining steps are only acknowledged
        try
        {
            PreReadBody();
            await using var abort = _lifetime.RequestAborted.UnsafeRegister(
                static state => { var x = (AsgiExchange)state!; x._server.Loop.Post(x, Aborted); }, this);
            _server.Loop.Post(this, Dispatch);

            while (true)
            {
                var step = await _steps.NextAsync();
                try
                {
                    switch (step.Kind)
                    {
                        case StepKind.Final:
                            if (!broken) await WriteFinalAsync(step);
                            return;
                        case StepKind.Fail:
                            if (!broken) await FailResponseAsync();
                            return;
                        case StepKind.Chunk:
                            _flushOk = !broken && await WriteChunkAsync(step);
                            _server.Loop.Post(this, Flushed);
                            break;
                    }
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    // Kestrel refused what the app sent (bad header bytes, status out of range, body
                    // longer than its content-length): the app cannot be told any more, so log it.
                    Log.Error($"Invalid ASGI response for {_request.Method} {_request.RawTarget}: {e.Message}");
                    broken = true;
                    await FailResponseAsync();
                    if (step.Kind == StepKind.Chunk)
                    {
                        _flushOk = false;
                        _server.Loop.Post(this, Flushed);
                    }
                    else return;
                }
                finally
                {
                    if (step.Headers is not null) ArrayPool<byte>.Shared.Return(step.Headers);
                    if (step.Body is not null) ArrayPool<byte>.Shared.Return(step.Body);
                }
            }
        }
        finally
        {
            await StopReadingAsync();
            _server.Drain.RequestEnded();
        }
    }

    /// <summary>
    /// Takes the body bytes Kestrel already has, so a small POST reaches the app with its body and
    /// receive() needs no round trip. Skipped for <c>Expect: 100-continue</c>: reading would send the
    /// 100 before the app has asked for the body.
    /// </summary>
    private void PreReadBody()
    {
        if (features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            _bodyComplete = true;
            return;
        }
        if (_request.Headers.Expect.Count > 0) return;
        if (BodyReader.TryRead(out var read))
        {
            _read = read;
            _hasRead = true;
        }
    }

    private async Task ReadBodyAsync(ValueTask<ReadResult> pending)
    {
        try
        {
            _read = await pending;
            _hasRead = true;
        }
        catch (Exception)
        {
            // The client went away or sent a malformed body; for the app both mean "disconnected".
            _readFailed = true;
        }
        _server.Loop.Post(this, BodyRead);
    }

    private async Task StopReadingAsync()
    {
        if (_readInFlight is { IsCompleted: false } reading)
        {
            BodyReader.CancelPendingRead();
            await reading;
        }
    }

    private bool BodyAllowed =>
        !HttpMethods.IsHead(_request.Method) && _response.StatusCode is not (< 200 or 204 or 304);

    private void StartResponse(in ResponseStep step)
    {
        _response.StatusCode = step.Status;
        var headers = _response.Headers;
        var span = step.Headers.AsSpan(0, step.HeadersLength);
        while (!span.IsEmpty)
        {
            var nameLength = BinaryPrimitives.ReadInt32LittleEndian(span);
            var valueLength = BinaryPrimitives.ReadInt32LittleEndian(span[4..]);
            var name = Encoding.Latin1.GetString(span.Slice(8, nameLength));
            var value = Encoding.Latin1.GetString(span.Slice(8 + nameLength, valueLength));
            span = span[(8 + nameLength + valueLength)..];
            // Kestrel chunks by itself when there is no content-length; an app-provided
            // "transfer-encoding: chunked" would make it expect pre-chunked bytes.
            if (name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase) &&
                value.Equals("chunked", StringComparison.OrdinalIgnoreCase)) continue;
            headers.Append(name, value);
        }
        if (!_server.KeepAlive) headers.Connection = "close";
    }

    private async ValueTask WriteFinalAsync(ResponseStep step)
    {
        if (step.Headers is not null)
        {
            StartResponse(step);
            // The whole body is known: send it with a length rather than chunked.
            if (BodyAllowed && _response.Headers.ContentLength is null) _response.Headers.ContentLength = step.BodyLength;
        }
        if (step.BodyLength > 0 && BodyAllowed) await _responseBody.Writer.WriteAsync(step.Body.AsMemory(0, step.BodyLength));
    }

    private async ValueTask<bool> WriteChunkAsync(ResponseStep step)
    {
        if (step.Headers is not null) StartResponse(step);
        var result = step.BodyLength > 0 && BodyAllowed
            ? await _responseBody.Writer.WriteAsync(step.Body.AsMemory(0, step.BodyLength))
            : await _responseBody.Writer.FlushAsync();
        return !result.IsCanceled && !result.IsCompleted && !_lifetime.RequestAborted.IsCancellationRequested;
    }

    private async ValueTask FailResponseAsync()
    {
        if (_response.HasStarted)
        {
            _lifetime.Abort();
            return;
        }
        _response.StatusCode = 500;
        _response.Headers.Clear();
        _response.Headers.ContentType = "text/plain; charset=utf-8";
        _response.Headers.ContentLength = InternalServerError.Length;
        if (!_server.KeepAlive) _response.Headers.Connection = "close";
        if (!HttpMethods.IsHead(_request.Method)) await _responseBody.Writer.WriteAsync(InternalServerError);
    }

    // ---------------------------------------------------------------- Python side

    public unsafe void RunOnPythonThread(int kind)
    {
        switch (kind)
        {
            case Dispatch: DispatchToApp(); break;
            case BodyRead: CompleteReceive(); break;
            case Aborted:
                _disconnected = true;
                Resolve(ref _pendingDisconnect, Py.None);
                if (_readInFlight is null or { IsCompleted: true }) Resolve(ref _pendingReceive, Py.None);
                break;
            case Flushed: Resolve(ref _pendingFlush, _flushOk ? Py.True : Py.False); break;
        }
    }

    private unsafe void DispatchToApp()
    {
        _handle = _server.Handles.Add(this);
        try
        {
            using var scope = _server.Scope.Build(_request, features.GetRequiredFeature<IHttpConnectionFeature>(), _server.State);
            using var handle = PyRef.Steal(Py.LongFromLong(_handle));
            PyRef body;
            bool more;
            if (_hasRead) (body, more) = ConsumeRead();
            else if (_bodyComplete) (body, more) = (PyRef.Borrow(_server.EmptyBytes), false);
            else (body, more) = (PyRef.Borrow(Py.None), true);
            try
            {
                var args = stackalloc nint[4] { handle.Handle, scope.Handle, body.Handle, more ? Py.True : Py.False };
                using var _ = PyRef.Steal(Py.Vectorcall(_server.DispatchFunction, args, 4, 0));
            }
            finally
            {
                body.Dispose();
            }
        }
        catch (PythonException e)
        {
            Log.Error($"Cannot dispatch request {_request.Method} {_request.RawTarget}: {e.Message}\n{e.Traceback}");
            Finish();
        }
    }

    /// <summary>Copies what the last read returned into a Python bytes object and releases it to Kestrel.</summary>
    private unsafe (PyRef Body, bool More) ConsumeRead()
    {
        var buffer = _read.Buffer;
        _hasRead = false;
        try
        {
            var more = !_read.IsCompleted;
            if (!more) _bodyComplete = true;
            var body = PyRef.Steal(Py.BytesFromStringAndSize(null, (nint)buffer.Length));
            byte* p;
            nint n;
            if (Py.BytesAsStringAndSize(body.Handle, &p, &n) != 0) throw PythonException.Fetch();
            buffer.CopyTo(new Span<byte>(p, (int)n));
            return (body, more);
        }
        finally
        {
            BodyReader.AdvanceTo(buffer.End);
        }
    }

    /// <summary><c>_mica.receive(handle, future)</c>: the app wants the next body chunk.</summary>
    public unsafe void Receive(nint future)
    {
        if (_pendingReceive != 0) throw new PythonError(Py.ExcRuntimeError, "receive() is already awaiting the request body");
        Py.IncRef(future);
        _pendingReceive = future;
        if (_disconnected)
        {
            Resolve(ref _pendingReceive, Py.None);
            return;
        }
        var pending = BodyReader.ReadAsync();
        if (pending.IsCompletedSuccessfully)
        {
            _read = pending.Result;
            _hasRead = true;
            CompleteReceive();
        }
        else
        {
            _readInFlight = ReadBodyAsync(pending);
        }
    }

    private unsafe void CompleteReceive()
    {
        if (_readFailed || !_hasRead || _read.IsCanceled)
        {
            if (_hasRead) BodyReader.AdvanceTo(_read.Buffer.Start);
            _hasRead = false;
            _disconnected = true;
            Resolve(ref _pendingReceive, Py.None);
            return;
        }
        using var tuple = PyRef.Steal(Py.TupleNew(2));   // (body, more_body); steals both items
        var (body, more) = ConsumeRead();
        Py.TupleSetItem(tuple.Handle, 0, body.Release());
        Py.TupleSetItem(tuple.Handle, 1, PyRef.NewReference(more ? Py.True : Py.False));
        Resolve(ref _pendingReceive, tuple.Handle);
    }

    /// <summary><c>_mica.wait_disconnect(handle, future)</c>: resolved when the client goes away.</summary>
    public unsafe void WaitDisconnect(nint future)
    {
        if (_pendingDisconnect != 0) throw new PythonError(Py.ExcRuntimeError, "receive() is already awaiting a disconnect");
        Py.IncRef(future);
        _pendingDisconnect = future;
        if (_disconnected) Resolve(ref _pendingDisconnect, Py.None);
    }

    /// <summary>
    /// <c>_mica.send(handle, status, headers, body, more_body, future)</c>: status and headers are
    /// None after the first call; future (to resolve once flushed) is given with more_body only.
    /// </summary>
    public unsafe void Send(nint status, nint headers, nint body, bool more, nint future)
    {
        if (_sentFinal) throw new PythonError(Py.ExcRuntimeError, "the response is already complete");
        byte[]? headerBuffer = null;
        var headerLength = 0;
        var statusCode = 0;
        if (status != Py.None)
        {
            statusCode = (int)Py.LongAsLong(status);
            if (statusCode == -1 && Py.ErrOccurred() != 0) throw PythonException.Fetch();
            (headerBuffer, headerLength) = SerializeHeaders(headers);
        }
        byte[]? bodyBuffer = null;
        ReadOnlySpan<byte> data;
        try { data = PyStr.AsSpan(body); }
        catch
        {
            if (headerBuffer is not null) ArrayPool<byte>.Shared.Return(headerBuffer);
            throw;
        }
        if (data.Length > 0)
        {
            bodyBuffer = ArrayPool<byte>.Shared.Rent(data.Length);
            data.CopyTo(bodyBuffer);
        }
        if (more)
        {
            Py.IncRef(future);
            _pendingFlush = future;
            _steps.Add(new ResponseStep(StepKind.Chunk, statusCode, headerBuffer, headerLength, bodyBuffer, data.Length));
        }
        else
        {
            _sentFinal = true;
            _steps.Add(new ResponseStep(StepKind.Final, statusCode, headerBuffer, headerLength, bodyBuffer, data.Length));
            // Like uvicorn: once the response is complete, a receive() waiting for the disconnect returns.
            Resolve(ref _pendingDisconnect, Py.None);
        }
    }

    /// <summary>
    /// Copies the app's header pairs into one pooled buffer ([name length][value length][name][value]
    /// repeated), so the Kestrel side can apply them without the GIL.
    /// </summary>
    private static unsafe (byte[] Buffer, int Length) SerializeHeaders(nint headers)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1024);
        var length = 0;
        try
        {
            if (headers == Py.None) return (buffer, 0);
            using var iterator = PyRef.Steal(Py.GetIter(headers));
            while (true)
            {
                var next = Py.IterNext(iterator.Handle);
                if (next == 0)
                {
                    if (Py.ErrOccurred() != 0) throw PythonException.Fetch();
                    return (buffer, length);
                }
                using var pair = PyRef.Steal(next);
                using var name = PyRef.Steal(Py.SequenceGetItem(pair.Handle, 0));
                using var value = PyRef.Steal(Py.SequenceGetItem(pair.Handle, 1));
                var nameBytes = PyStr.AsSpan(name.Handle);
                var valueBytes = PyStr.AsSpan(value.Handle);
                var needed = length + 8 + nameBytes.Length + valueBytes.Length;
                if (needed > buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(length), nameBytes.Length);
                BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(length + 4), valueBytes.Length);
                nameBytes.CopyTo(buffer.AsSpan(length + 8));
                valueBytes.CopyTo(buffer.AsSpan(length + 8 + nameBytes.Length));
                length = needed;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>
    /// <c>_mica.finish(handle)</c>: the app's task ended. Exactly once per request. Without a
    /// complete response the Kestrel side answers 500 (or aborts if the response had started).
    /// </summary>
    public unsafe void Finish()
    {
        _server.Handles.Remove(_handle);
        Resolve(ref _pendingReceive, Py.None);
        Resolve(ref _pendingDisconnect, Py.None);
        Resolve(ref _pendingFlush, Py.False);
        if (!_sentFinal)
        {
            _sentFinal = true;
            _steps.Add(new ResponseStep(StepKind.Fail, 0, null, 0, null, 0));
        }
    }

    /// <summary>Completes a future the app is awaiting (unless it was cancelled) and drops our reference.</summary>
    private unsafe void Resolve(ref nint future, nint value)
    {
        if (future == 0) return;
        var f = future;
        future = 0;
        try
        {
            var args = stackalloc nint[2] { f, value };
            var result = Py.Vectorcall(_server.ResolveFunction, args, 2, 0);
            if (result == 0) throw PythonException.Fetch();
            Py.DecRef(result);
        }
        finally
        {
            Py.DecRef(f);
        }
    }
}
