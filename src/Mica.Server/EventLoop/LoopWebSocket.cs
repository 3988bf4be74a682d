using System.Buffers;
using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text;
using System.Threading.Channels;
using Mica.Server.Hosting;
using Mica.Server.Python;

namespace Mica.Server.EventLoop;

/// <summary>
/// An accepted websocket between a client and an async app (ASGI or RSGI).
///
/// Kestrel side: a receive loop (messages in, at most <see cref="ReceiveAhead"/> ahead of the app)
/// and a send loop (the app's sends and close, in order). Python side: <c>_mica.ws_receive</c>,
/// <c>ws_send</c> and <c>ws_close</c> complete the app's futures as the loops report back through
/// the <see cref="PythonLoop"/>. The close handshake is done properly in both directions; when the
/// worker drains, the server closes with 1001 (Going Away) instead of dropping the connection.
/// </summary>
internal sealed class LoopWebSocket(LoopServer server, WebSocket socket) : IPythonWork
{
    /// <summary>A bigger message closes the socket with 1009 (uvicorn's default --ws-max-size).</summary>
    public const int MaxMessageBytes = 16 * 1024 * 1024;

    /// <summary>
    /// Whether a close frame may carry <paramref name="code"/> (RFC 6455 7.4): the defined codes
    /// other than 1004 (reserved), 1005, 1006 and 1015 (only ever reported locally), and the
    /// 3000-4999 range for libraries and apps.
    /// </summary>
    public static bool IsSendableCloseCode(long code) => code is (>= 1000 and <= 1003) or (>= 1007 and <= 1014) or (>= 3000 and <= 4999);

    /// <summary>Messages read ahead of the app: beyond this the socket is not read (TCP backpressure).</summary>
    private const int ReceiveAhead = 16;

    /// <summary>How long a close we sent may wait for the client's before the connection is dropped.</summary>
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(5);

    private const int Arrived = 0, Sent = 1;

    /// <summary>A message for the app: text or binary data, or the close (code, reason) that ends the stream.</summary>
    private readonly record struct Incoming(byte[]? Data, bool Text, int CloseCode = 0, string? CloseReason = null);

    /// <summary>A send or close for the socket; <see cref="Acknowledge"/>: the app awaits a report.</summary>
    private readonly record struct Outgoing(byte[]? Data, int Length, bool Text, bool Close, int CloseCode, string? CloseReason, bool Acknowledge);

    private readonly ConcurrentQueue<Incoming> _incoming = new();
    private readonly SemaphoreSlim _credits = new(ReceiveAhead);
    private readonly Channel<Outgoing> _outgoing = Channel.CreateUnbounded<Outgoing>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentQueue<bool> _sendResults = new();
    private int _closeSent;
    private volatile CloseFrame? _sentClose;   // the close the server sent first, if it started the handshake
    /// <summary>
    /// Cancelled when the session is over, which ends a wait for the client's close reply: a
    /// pending 5 s timer would keep the whole session (socket, Kestrel connection, buffers) alive
    /// and push it into the older GC generations.
    /// </summary>
    private readonly CancellationTokenSource _ended = new();

    private sealed record CloseFrame(int Code, string Reason);

    // Python thread only.
    private nint _pendingReceive;                          // an owned reference to a future
    private readonly Queue<nint> _sendFutures = new();     // owned references, resolved in order
    private bool _streamEnded;                             // the close was handed to the app

    // ---------------------------------------------------------------- Kestrel side

    /// <summary>Runs until the socket is closed (by either side) or the connection is lost.</summary>
    public async Task RunAsync(CancellationToken draining)
    {
        await using var goingAway = draining.Register(static state => ((LoopWebSocket)state!).CloseFromServer(1001, "Server shutting down"), this);
        try
        {
            var sending = SendLoopAsync();
            await ReceiveLoopAsync();
            _outgoing.Writer.TryComplete();
            await sending;
            // Closed by both sides by now, unless the client broke off or a message was too big.
            if (socket.State != WebSocketState.Closed) socket.Abort();
        }
        finally
        {
            // Frees the permessage-deflate streams now: they hold zlib's native memory (~300 KiB a
            // socket) that the garbage collector does not see, so a finaliser would free it only at
            // a rare gen2 collection (bench/soak.py: +11% RSS in 150 s of websocket sessions).
            socket.Dispose();
            _ended.Cancel();   // not disposed: it holds no timer, and a late send loop may still read its token
        }
    }

    /// <summary>
    /// Any thread: the server closes (app finished, draining, a reply to the client's close). All
    /// frames go out through the send loop, since a websocket allows one send at a time.
    /// </summary>
    public void CloseFromServer(int code, string reason) =>
        _outgoing.Writer.TryWrite(new Outgoing(null, 0, false, true, code, reason, Acknowledge: false));

    private async Task ReceiveLoopAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (true)
            {
                await _credits.WaitAsync();
                var length = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (length == buffer.Length)
                    {
                        var bigger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                        buffer.AsSpan(0, length).CopyTo(bigger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = bigger;
                    }
                    result = await socket.ReceiveAsync(buffer.AsMemory(length), CancellationToken.None);
                    length += result.Count;
                    if (length > MaxMessageBytes)
                    {
                        CloseFromServer((int)WebSocketCloseStatus.MessageTooBig, "Message too big");
                        Deliver(new Incoming(null, false, (int)WebSocketCloseStatus.MessageTooBig, "Message too big"));
                        return;
                    }
                } while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    var code = (int?)socket.CloseStatus ?? 1005;     // 1005: the close frame had no code
                    var reason = socket.CloseStatusDescription ?? "";
                    // The client's answer to a close the server started (e.g. 1001 when draining) tells
                    // the app why the server closed, not what the client echoed.
                    if (_sentClose is { } ours) (code, reason) = (ours.Code, ours.Reason);
                    CloseFromServer((int)(socket.CloseStatus ?? WebSocketCloseStatus.NormalClosure), reason);   // the handshake's reply
                    Deliver(new Incoming(null, false, code, reason));
                    return;
                }
                Deliver(new Incoming(buffer.AsSpan(0, length).ToArray(), result.MessageType == WebSocketMessageType.Text));
            }
        }
        catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException
                                      or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
        {
            // Lost without a close handshake (or invalid frames, which .NET answers with a close itself).
            Deliver(new Incoming(null, false, socket.CloseStatus is { } status ? (int)status : 1006, socket.CloseStatusDescription ?? ""));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task SendLoopAsync()
    {
        await foreach (var item in _outgoing.Reader.ReadAllAsync())
        {
            var ok = false;
            try
            {
                if (item.Close)
                {
                    ok = await SendCloseAsync((WebSocketCloseStatus)item.CloseCode, item.CloseReason ?? "");
                    // Only a close the server started waits for the client's reply.
                    if (ok && socket.State == WebSocketState.CloseSent) _ = AbortIfNoReplyAsync();
                }
                else if (socket.State == WebSocketState.Open)
                {
                    await socket.SendAsync(item.Data.AsMemory(0, item.Length),
                        item.Text ? WebSocketMessageType.Text : WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None);
                    ok = true;
                }
            }
            catch (Exception e) when (e is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException
                                          or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
            {
            }
            finally
            {
                if (item.Data is not null) ArrayPool<byte>.Shared.Return(item.Data);
            }
            if (item.Acknowledge) Report(ok);
        }
    }

    /// <summary>Sends our close frame once; false if it was already sent or cannot be.</summary>
    private async Task<bool> SendCloseAsync(WebSocketCloseStatus status, string reason)
    {
        if (Interlocked.Exchange(ref _closeSent, 1) == 1) return false;
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return false;
        if (socket.State == WebSocketState.Open) _sentClose = new CloseFrame((int)status, reason);   // the server starts the handshake
        try
        {
            await socket.CloseOutputAsync(status, reason, CancellationToken.None);
            return true;
        }
        catch (Exception e) when (e is WebSocketException or IOException or ObjectDisposedException
                                      or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
        {
            return false;
        }
    }

    private async Task AbortIfNoReplyAsync()
    {
        try
        {
            await Task.Delay(CloseTimeout, _ended.Token);
        }
        catch (OperationCanceledException)
        {
            return;   // the client replied (or the connection ended) first
        }
        if (socket.State != WebSocketState.Closed) socket.Abort();
    }

    private void Deliver(Incoming message)
    {
        _incoming.Enqueue(message);
        server.Loop.Post(this, Arrived);
    }

    private void Report(bool ok)
    {
        _sendResults.Enqueue(ok);
        server.Loop.Post(this, Sent);
    }

    // ---------------------------------------------------------------- Python side

    public void RunOnPythonThread(int kind)
    {
        if (kind == Arrived) HandOver();
        else if (_sendResults.TryDequeue(out var ok) && _sendFutures.TryDequeue(out var future))
            Resolve(future, ok ? Py.True : Py.False);
    }

    /// <summary><c>_mica.ws_receive(handle, future)</c>: the next message, or the close (code, reason).</summary>
    public unsafe void Receive(nint future)
    {
        if (_pendingReceive != 0) throw new PythonError(Py.ExcRuntimeError, "receive() is already awaiting a websocket message");
        Py.IncRef(future);
        _pendingReceive = future;
        HandOver();
    }

    /// <summary>Gives the waiting receive() the next message, if both exist.</summary>
    private unsafe void HandOver()
    {
        if (_pendingReceive == 0) return;
        if (_streamEnded)
        {
            // Already told the app; a further receive() gets the same close again from the interface module.
            return;
        }
        if (!_incoming.TryDequeue(out var message)) return;
        var future = _pendingReceive;
        _pendingReceive = 0;
        PyRef value;
        if (message.Data is null)
        {
            _streamEnded = true;
            value = PyRef.Steal(Py.TupleNew(2));
            Py.TupleSetItem(value.Handle, 0, PyRef.Check(Py.LongFromLong(message.CloseCode)));
            var reason = PyStr.New(message.CloseReason ?? "");
            Py.TupleSetItem(value.Handle, 1, reason.Release());
        }
        else if (message.Text)
        {
            fixed (byte* p = message.Data) value = PyRef.Steal(Py.UnicodeDecodeUTF8(p, message.Data.Length, PyStr.Utf8Z("replace")));
        }
        else value = PyStr.Bytes(message.Data);
        _credits.Release();
        using (value) Resolve(future, value.Handle);
    }

    /// <summary><c>_mica.ws_send(handle, data, future)</c>: str is sent as a text message, bytes as binary.</summary>
    public unsafe void Send(nint data, nint future)
    {
        var text = PyStr.TryAsUtf8(data, out var utf8);
        var payload = text ? utf8 : PyStr.AsSpan(data);
        var length = payload.Length;
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        payload.CopyTo(buffer);
        Submit(new Outgoing(buffer, length, text, false, 0, null, Acknowledge: true), future);
    }

    /// <summary><c>_mica.ws_close(handle, code, reason, future)</c>: future may be None (nothing to report).</summary>
    public void Close(int code, string reason, nint future)
    {
        Submit(new Outgoing(null, 0, false, true, code, reason, Acknowledge: future != Py.None), future);
    }

    /// <summary>
    /// Hands a frame to the send loop; an acknowledged one's future (borrowed from the caller) is
    /// resolved when the loop reports, or with False at once if the socket is already done.
    /// </summary>
    private unsafe void Submit(Outgoing item, nint future)
    {
        if (item.Acknowledge) Py.IncRef(future);
        if (_outgoing.Writer.TryWrite(item))
        {
            if (item.Acknowledge) _sendFutures.Enqueue(future);
            return;
        }
        if (item.Data is not null) ArrayPool<byte>.Shared.Return(item.Data);
        if (item.Acknowledge) Resolve(future, Py.False);
    }

    /// <summary>The app's task ended: the futures it left are dropped; an open socket is closed (1000).</summary>
    public void AppFinished()
    {
        CloseFromServer(1000, "");
        if (_pendingReceive != 0) Resolve(_pendingReceive, Py.None);
        _pendingReceive = 0;
    }

    private void Resolve(nint future, nint value) => server.Resolve(future, value);
}
