using System.Buffers;
using System.Runtime.InteropServices;
using Mica.Server.Http;
using Mica.Server.Native;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Win32.SafeHandles;

namespace Mica.Server.Wsgi;

/// <summary>
/// One HTTP request in flight between Kestrel and the WSGI app.
///
/// The request's Kestrel task (<see cref="HttpExchange"/>) queues it on the <see cref="WsgiThreadPool"/>
/// and writes the response steps; a <c>mica-wsgi-N</c> thread runs the app (<see cref="Run"/>) and,
/// through the <c>_mica.wsgi_*</c> calls, reads the body and produces the steps. That thread blocks,
/// with the GIL released, when it must wait for the socket: a body read, the flush of a streamed chunk.
/// Steps are added with the GIL released. A streamed chunk is written on this same thread, which
/// waits for it anyway; the step that completes a response is written on the thread pool, so the
/// thread goes straight on to its next request (bench: the mica-wsgi threads' CPU per request
/// 9.2 -> 5.0-6.5 us for 10 B bodies, 27-37 -> 8.5-10.5 us for 100 KiB, requests/s unchanged on 2 cores).
/// </summary>
internal sealed class WsgiExchange(WsgiServer server, IFeatureCollection features)
    : HttpExchange(server.Services, features)
{
    private readonly WsgiServer _server = server;
    private readonly SemaphoreSlim _flushed = new(0, 1);
    private volatile bool _flushOk;
    private bool _sentFinal;
    // The step that completes the response, held until the thread releases the GIL (Deliver).
    private ResponseStep? _last;

    // ---------------------------------------------------------------- Kestrel side

    protected override void Dispatch() => _server.Pool.Enqueue(this);

    // Nothing to tell: a pending body read fails by itself, and the next flush reports the loss.
    protected override void OnAborted() { }

    /// <summary>
    /// The app may leave body bytes it never read, taken before dispatch or by its last read:
    /// they go back to Kestrel, which then skips the rest of the body and keeps the connection.
    /// (This runs once the app is done with the request, so no read of the app's is in progress.)
    /// </summary>
    protected override ValueTask StopReadingAsync()
    {
        if (HasRead)
        {
            BodyReader.AdvanceTo(LastRead.Buffer.Start);
            HasRead = false;
        }
        return ValueTask.CompletedTask;
    }

    protected override void OnChunkFlushed(bool ok)
    {
        _flushOk = ok;
        _flushed.Release();
    }

    // ---------------------------------------------------------------- WSGI thread, GIL held

    /// <summary>Runs the app for this request; whatever happens, the response is completed exactly once.</summary>
    public unsafe void Run(WsgiEnviron environ)
    {
        var handle = _server.Handles.Add(this);
        try
        {
            using var env = environ.Build(Request, Features.GetRequiredFeature<IHttpConnectionFeature>(), ForwardedServer);
            using var handleObj = PyRef.Steal(Py.LongFromLong(handle));
            var args = stackalloc nint[3] { _server.App, env.Handle, handleObj.Handle };
            using var _ = PyRef.Steal(Py.Vectorcall(_server.RunFunction, args, 3, 0));
        }
        catch (PythonException e)
        {
            Log.Error($"Cannot run the WSGI app for {Request.Method} {Request.RawTarget}: {e.Message}\n{e.Traceback}");
        }
        catch (Exception e)
        {
            Log.Error($"Internal error serving {Request.Method} {Request.RawTarget}: {e}");
        }
        finally
        {
            _server.Handles.Remove(handle);
            if (!_sentFinal)
            {
                _sentFinal = true;
                _last = new ResponseStep(StepKind.Fail, 0, null, 0);
            }
        }
    }

    /// <summary>WSGI thread, GIL released, after <see cref="Run"/>: completes the response (written on the thread pool).</summary>
    public void Deliver()
    {
        if (_last is { } step)
        {
            _last = null;
            Steps.Add(step, handOff: true);
        }
    }

    /// <summary>
    /// <c>_mica.wsgi_read(handle, size)</c>: up to <paramref name="size"/> body bytes, b"" at the end.
    /// Waits for the client with the GIL released.
    /// </summary>
    public unsafe nint Read(long size)
    {
        if (_sentFinal || BodyComplete && !HasRead) return PyRef.NewReference(_server.EmptyBytes);
        if (!HasRead)
        {
            var pending = BodyReader.ReadAsync();
            try
            {
                if (pending.IsCompleted) LastRead = pending.Result;
                else
                {
                    using (GilRelease.Begin()) LastRead = pending.AsTask().GetAwaiter().GetResult();
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The client went away, or sent a malformed (e.g. badly chunked) body.
                OnBodyReadFailed(e);
                throw new PythonError(_server.RequestBodyError, $"error reading the request body: {e.Message}");
            }
            HasRead = true;
        }
        var buffer = LastRead.Buffer;
        if (LastRead.IsCanceled) throw new PythonError(Py.ExcOSError, "request body read cancelled");
        var n = (int)Math.Min(size, buffer.Length);
        var part = buffer.Slice(0, n);
        var bytes = PyRef.Check(Py.BytesFromStringAndSize(null, n));
        byte* p;
        nint length;
        if (Py.BytesAsStringAndSize(bytes, &p, &length) != 0)
        {
            Py.DecRef(bytes);
            throw PythonException.Fetch();
        }
        part.CopyTo(new Span<byte>(p, n));
        var ended = LastRead.IsCompleted && n == buffer.Length;
        BodyReader.AdvanceTo(part.End);
        HasRead = false;
        if (ended) BodyComplete = true;
        return bytes;
    }

    /// <summary>
    /// <c>_mica.wsgi_send(handle, status, headers, body, more)</c>: status and headers are given with
    /// the first call only. With <paramref name="more"/>, waits (GIL released) until the chunk is
    /// flushed, and returns false if the client has gone.
    /// </summary>
    public bool Send(nint status, nint headers, nint body, bool more)
    {
        if (_sentFinal) throw new PythonError(Py.ExcRuntimeError, "the response is already complete");
        var (code, reason) = status == Py.None ? (0, null) : ParseStatus(status);
        byte[]? headerBuffer = null;
        var headerLength = 0;
        if (status != Py.None) (headerBuffer, headerLength) = HeaderBlock.FromPython(headers, HeaderForm.Latin1Text);
        // The body last, as it may hold a Python reference: if it is not bytes, the header buffer
        // rented above is only left to the garbage collector.
        var content = ResponseBody.FromPython(body);
        if (!more)
        {
            _sentFinal = true;
            _last = new ResponseStep(StepKind.Final, code, headerBuffer, headerLength, content, reason);
            return true;
        }
        using (GilRelease.Begin())
        {
            // Not added once the request's Kestrel task has ended: nothing will flush it.
            if (Steps.Add(new ResponseStep(StepKind.Chunk, code, headerBuffer, headerLength, content, reason))) _flushed.Wait();
            else _flushOk = false;
        }
        DeferredRelease.Run();   // the chunk's bytes, among others
        return _flushOk;
    }

    /// <summary>
    /// <c>_mica.wsgi_send_file(handle, status, headers, fd, offset, count)</c>: the rest of the
    /// response is <paramref name="count"/> bytes of a regular file. The file descriptor is
    /// duplicated, so the app may close its file as soon as this returns.
    /// </summary>
    public void SendFile(nint status, nint headers, int fd, long offset, long count)
    {
        if (_sentFinal) throw new PythonError(Py.ExcRuntimeError, "the response is already complete");
        var (code, reason) = status == Py.None ? (0, null) : ParseStatus(status);
        var own = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);
        if (own < 0) throw new PythonError(Py.ExcOSError, $"cannot duplicate file descriptor {fd} (errno {Marshal.GetLastPInvokeError()})");
        var file = new FileBody(new SafeFileHandle(own, ownsHandle: true), offset, count);
        byte[]? headerBuffer = null;
        var headerLength = 0;
        try
        {
            if (status != Py.None) (headerBuffer, headerLength) = HeaderBlock.FromPython(headers, HeaderForm.Latin1Text);
        }
        catch
        {
            file.Handle.Dispose();
            throw;
        }
        _sentFinal = true;
        _last = new ResponseStep(StepKind.File, code, headerBuffer, headerLength, default, reason, file);
    }

    /// <summary>"200 OK" → (200, "OK"). PEP 3333: three digits, a space, a reason phrase.</summary>
    private static (int Code, string? Reason) ParseStatus(nint status)
    {
        var text = PyStr.ToManaged(status);
        if (text.Length < 3 || !char.IsAsciiDigit(text[0]) || !char.IsAsciiDigit(text[1]) || !char.IsAsciiDigit(text[2])
            || (text.Length > 3 && text[3] != ' ') || text[0] == '0')
            throw new PythonError(Py.ExcValueError, $"invalid WSGI status '{text}': expected e.g. '200 OK'");
        var reason = text.Length > 4 ? text[4..] : null;
        if (reason is not null && reason.AsSpan().IndexOfAny('\r', '\n') >= 0)
            throw new PythonError(Py.ExcValueError, "the WSGI status reason phrase contains a line break");
        return (int.Parse(text.AsSpan(0, 3)), reason);
    }
}
