using System.Buffers;
using System.IO.Pipelines;
using System.Net.WebSockets;
using Microsoft.Win32.SafeHandles;
using Microsoft.AspNetCore.Http;
using Mica.Server.Hosting;
using Mica.Server.Http;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.EventLoop;

/// <summary>
/// One HTTP request in flight between Kestrel and an async app (ASGI or RSGI).
///
/// Two parties touch it: the request's Kestrel task (<see cref="HttpExchange"/>: reads the request,
/// writes the response) and the Python thread (builds the scope, answers the app's receive/send).
/// They meet in two places only: <see cref="PythonLoop.Post"/> (Kestrel → Python) and
/// <see cref="ResponseSteps"/> (Python → Kestrel). Python objects are touched on the Python thread
/// only.
/// </summary>
/// <remarks>
/// Where the response is written. Over HTTP/2 a response only becomes frames queued for the
/// connection's own writer, so the Python thread writes it inline and saves a thread hop
/// (bench/suite.py --scenarios http2: ~55k → ~61k requests/s, server CPU 23 → 22 µs per request).
/// Over HTTP/1.1 writing costs the Python thread about 5 µs (Kestrel's response path, up to the
/// socket send it schedules): under load the thread pool does it, so the one Python thread
/// only runs the app. With few requests in flight (<see cref="InlineWritesUpTo"/>) the thread pool
/// would first have to wake up a thread for each response, which costs more than the write, so
/// the Python thread writes it (bench: wrk -c8, 1.23x requests/s at 0.72x server CPU per request;
/// -c64 and -c128 unchanged).
/// </remarks>
internal sealed class LoopExchange(LoopServer server, IFeatureCollection features)
    : HttpExchange(server.Services, features), IPythonWork
{
    private readonly LoopServer _server = server;
    private readonly bool _http2 = features.GetRequiredFeature<IHttpRequestFeature>().Protocol == "HTTP/2";

    /// <summary>Up to this many requests in flight in the worker, an HTTP/1.1 response is written on the Python thread.</summary>
    private const int InlineWritesUpTo = 8;

    /// <summary>
    /// Whether a body step is written on the thread pool rather than on the Python thread: see the
    /// remarks. Other steps (file, upgrade, 100-continue, failure) always go to the pool over HTTP/1.1.
    /// </summary>
    private bool WriteOnPool => !_http2 && _server.Services.Drain.RequestsInFlight > InlineWritesUpTo;

    // Work kinds posted to the Python thread.
    private const int DispatchWork = 0, BodyRead = 1, Aborted = 2, Flushed = 3, Accepted = 4, ContinueHandled = 5;

    // A websocket handshake (the request has Kestrel's websocket feature), then the socket once accepted.
    private bool _isWebSocket;
    private LoopWebSocket? _webSocket;
    private nint _pendingAccept;   // Python thread: an owned reference to the future accept() awaits

    // Request body reads the app asked for, completed on a Kestrel thread.
    private bool _readFailed;
    private Task? _readInFlight;
    private volatile bool _flushOk;

    // Python thread only.
    private long _handle;
    private nint _pendingReceive, _pendingDisconnect, _pendingFlush;   // owned references to futures
    private bool _disconnected, _sentFinal;

    // ---------------------------------------------------------------- Kestrel side

    protected override void Dispatch()
    {
        _isWebSocket = Features.Get<IHttpWebSocketFeature>() is { IsWebSocketRequest: true };
        _server.Loop.Post(this, DispatchWork);
    }

    protected override int FailureStatus => _isWebSocket ? 403 : 500;

    /// <summary>Could be a websocket handshake (HTTP/1.1 Upgrade, or HTTP/2 extended CONNECT).</summary>
    public bool MayUpgrade =>
        Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } ||
        Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true };

    /// <summary>For ASP.NET middleware: an HttpContext over this request, which finds the exchange among its features.</summary>
    public HttpContext AsHttpContext()
    {
        Features.Set(this);
        return new DefaultHttpContext(Features);
    }

    /// <summary>The app accepted the websocket: complete the handshake, then serve the socket until it closes.</summary>
    protected override async Task RunUpgradeAsync(ResponseStep step)
    {
        WebSocket socket;
        try
        {
            socket = await Features.GetRequiredFeature<IHttpWebSocketFeature>().AcceptAsync(
                new WebSocketAcceptContext { SubProtocol = step.Reason, DangerousEnableCompression = true });
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
        {
            Log.Debug($"websocket handshake for {Request.RawTarget} failed: {e.Message}");
            _server.Loop.Post(this, Accepted);
            return;
        }
        _webSocket = new LoopWebSocket(_server, socket);
        _server.Loop.Post(this, Accepted);
        await _webSocket.RunAsync(_server.Services.Drain.Draining);
    }

    protected override void OnAborted() => _server.Loop.Post(this, Aborted);

    protected override void OnContinueHandled() => _server.Loop.Post(this, ContinueHandled);

    protected override void OnChunkFlushed(bool ok)
    {
        _flushOk = ok;
        _server.Loop.Post(this, Flushed);
    }

    private async Task ReadBodyAsync(ValueTask<ReadResult> pending)
    {
        try
        {
            LastRead = await pending;
            HasRead = true;
        }
        catch (Exception e)
        {
            // The client went away or sent a malformed body; for the app both mean "disconnected".
            OnBodyReadFailed(e);
            _readFailed = true;
        }
        _server.Loop.Post(this, BodyRead);
    }

    protected override async ValueTask StopReadingAsync()
    {
        if (_readInFlight is { IsCompleted: false } reading)
        {
            BodyReader.CancelPendingRead();
            await reading;
        }
    }

    // ---------------------------------------------------------------- Python side

    public unsafe void RunOnPythonThread(int kind)
    {
        switch (kind)
        {
            case DispatchWork: DispatchToApp(); break;
            case BodyRead: CompleteReceive(); break;
            case Aborted:
                _disconnected = true;
                Resolve(ref _pendingDisconnect, Py.None);
                if (_readInFlight is null or { IsCompleted: true }) Resolve(ref _pendingReceive, Py.None);
                break;
            case Flushed: Resolve(ref _pendingFlush, _flushOk ? Py.True : Py.False); break;
            case Accepted: Resolve(ref _pendingAccept, _webSocket is not null ? Py.True : Py.False); break;
            case ContinueHandled: if (_pendingReceive != 0) StartRead(); break;
        }
    }

    private unsafe void DispatchToApp()
    {
        _handle = _server.Handles.Add(this);
        try
        {
            using var scope = _server.BuildScope(Features, _isWebSocket);
            using var handle = PyRef.Steal(Py.LongFromLong(_handle));
            if (_isWebSocket)
            {
                var wsArgs = stackalloc nint[2] { handle.Handle, scope.Handle };
                using var __ = PyRef.Steal(Py.Vectorcall(_server.WebSocketDispatchFunction, wsArgs, 2, 0));
                return;
            }
            PyRef body;
            bool more;
            if (HasRead) (body, more) = ConsumeRead();
            else if (BodyComplete) (body, more) = (PyRef.Borrow(_server.EmptyBytes), false);
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
            Log.Error($"Cannot dispatch request {Request.Method} {Request.RawTarget}: {e.Message}\n{e.Traceback}");
            Finish();
        }
    }

    /// <summary>Copies what the last read returned into a Python bytes object and releases it to Kestrel.</summary>
    private unsafe (PyRef Body, bool More) ConsumeRead()
    {
        var buffer = LastRead.Buffer;
        HasRead = false;
        try
        {
            var more = !LastRead.IsCompleted;
            if (!more) BodyComplete = true;
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
        if (ExpectsContinue)
        {
            // The first read goes after whatever the response has written so far (see StepKind.Continue).
            ExpectsContinue = false;
            if (!Steps.Add(new ResponseStep(StepKind.Continue, 0, null, 0), !_http2)) Resolve(ref _pendingReceive, Py.None);
            return;
        }
        StartRead();
    }

    private void StartRead()
    {
        ValueTask<ReadResult> pending;
        try
        {
            pending = BodyReader.ReadAsync();   // parses what is buffered, so it may throw at once
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            OnBodyReadFailed(e);
            _readFailed = true;
            CompleteReceive();
            return;
        }
        if (pending.IsCompletedSuccessfully)
        {
            LastRead = pending.Result;
            HasRead = true;
            CompleteReceive();
        }
        else
        {
            _readInFlight = ReadBodyAsync(pending);
        }
    }

    private unsafe void CompleteReceive()
    {
        if (_readFailed || !HasRead || LastRead.IsCanceled)
        {
            if (HasRead) BodyReader.AdvanceTo(LastRead.Buffer.Start);
            HasRead = false;
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

    /// <summary>
    /// <c>_mica.ws_accept(handle, subprotocol, headers, future)</c>: future is resolved True once the
    /// socket is open, False if the client went away first.
    /// </summary>
    public unsafe void Accept(nint subprotocol, nint headers, nint future)
    {
        if (!_isWebSocket || _sentFinal) throw new PythonError(Py.ExcRuntimeError, "this request cannot be accepted as a websocket");
        var protocol = subprotocol == Py.None ? null : PyStr.ToManaged(subprotocol);
        var (headerBuffer, headerLength) = HeaderBlock.FromPython(headers, _server.HeaderForm);
        Py.IncRef(future);
        _pendingAccept = future;
        _sentFinal = true;
        if (!Steps.Add(new ResponseStep(StepKind.Upgrade, 101, headerBuffer, headerLength, default, protocol), !_http2)) Resolve(ref _pendingAccept, Py.False);
    }

    /// <summary>The accepted websocket, for the <c>_mica.ws_*</c> calls.</summary>
    public LoopWebSocket WebSocket => _webSocket ?? throw new PythonError(Py.ExcRuntimeError, "the websocket is not open");

    /// <summary>
    /// <c>_mica.wait_disconnect(handle, future)</c>: resolved when the client goes away, or once the
    /// response is complete. A new future replaces one still held (which its awaiter gave up on).
    /// </summary>
    public unsafe void WaitDisconnect(nint future)
    {
        if (_pendingDisconnect != 0) Py.DecRef(_pendingDisconnect);
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
            statusCode = StatusCode(status);
            (headerBuffer, headerLength) = HeaderBlock.FromPython(headers, _server.HeaderForm);
        }
        // The body last, as it may hold a Python reference: if it is not bytes, the header buffer
        // rented above is only left to the garbage collector.
        var content = ResponseBody.FromPython(body);
        if (more)
        {
            Py.IncRef(future);
            _pendingFlush = future;
            // Not added once the request's Kestrel task has ended: nothing will flush it.
            if (!Steps.Add(new ResponseStep(StepKind.Chunk, statusCode, headerBuffer, headerLength, content), WriteOnPool)) Resolve(ref _pendingFlush, Py.False);
        }
        else
        {
            _sentFinal = true;
            Steps.Add(new ResponseStep(StepKind.Final, statusCode, headerBuffer, headerLength, content), WriteOnPool);
            // Like uvicorn: once the response is complete, a receive() waiting for the disconnect returns.
            Resolve(ref _pendingDisconnect, Py.None);
        }
    }

    /// <summary>
    /// <c>_mica.send_file(handle, status, headers, path[, start, end])</c>: the response body is the
    /// file, or its bytes [start, end) (ASGI's <c>http.response.pathsend</c>, RSGI's
    /// <c>response_file</c> and <c>response_file_range</c>). The file is opened here, so a missing
    /// or unreadable one is an OSError for the app.
    /// </summary>
    public unsafe void SendFile(nint status, nint headers, string path, long start = 0, long end = long.MaxValue)
    {
        if (_sentFinal) throw new PythonError(Py.ExcRuntimeError, "the response is already complete");
        var statusCode = StatusCode(status);
        var (headerBuffer, headerLength) = HeaderBlock.FromPython(headers, _server.HeaderForm);
        SafeFileHandle file;
        long length;
        try
        {
            file = File.OpenHandle(path);
            length = RandomAccess.GetLength(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            ArrayPool<byte>.Shared.Return(headerBuffer);
            throw new PythonError(Py.ExcOSError, $"cannot send {path}: {e.Message}");
        }
        var offset = Math.Min(start, length);
        _sentFinal = true;
        Steps.Add(new ResponseStep(StepKind.File, statusCode, headerBuffer, headerLength,
            File: new FileBody(file, offset, Math.Min(end, length) - offset)), !_http2);
        Resolve(ref _pendingDisconnect, Py.None);
    }

    /// <summary>The app's status as an int of three digits; anything else is the app's error (a 500), not a status line.</summary>
    private static unsafe int StatusCode(nint status)
    {
        var code = Py.LongAsLong(status);
        if (code == -1 && Py.ErrOccurred() != 0) throw PythonException.Fetch();
        if (code is < 100 or > 999) throw new PythonError(Py.ExcValueError, $"invalid HTTP status code {code}: it must be between 100 and 999");
        return (int)code;
    }

    /// <summary>
    /// <c>_mica.finish(handle)</c>: the app's task ended. Exactly once per request. Without a
    /// complete response the Kestrel side answers 500 (or aborts if the response had started).
    /// </summary>
    public unsafe void Finish()
    {
        _server.Handles.Remove(_handle);
        _webSocket?.AppFinished();
        Resolve(ref _pendingAccept, Py.False);
        Resolve(ref _pendingReceive, Py.None);
        Resolve(ref _pendingDisconnect, Py.None);
        Resolve(ref _pendingFlush, Py.False);
        if (!_sentFinal)
        {
            _sentFinal = true;
            Steps.Add(new ResponseStep(StepKind.Fail, 0, null, 0), !_http2);
        }
    }

    /// <summary>Completes a future the app is awaiting (unless it was cancelled) and drops our reference.</summary>
    private void Resolve(ref nint future, nint value)
    {
        if (future == 0) return;
        var f = future;
        future = 0;
        _server.Resolve(f, value);
    }
}
