using System.Net;
using Microsoft.AspNetCore.Connections;

namespace Mica.Server.Hosting;

/// <summary>
/// Lets a worker leave without failing a single client (rolling restarts, scale-down, stop).
/// Stopping Kestrel straight away closes idle keep-alive connections while their clients may
/// already be sending the next request, and drops connections accepted but not yet read. So:
///
/// 1. <see cref="BeginDrain"/> stops accepting, an accept already pending included: connections
///    still queued on the shared listening socket are left to the other workers (the master owns
///    the socket; they all accept from it).
/// 2. Every response from then on carries <c>Connection: close</c> (<see cref="KeepAlive"/>), so
///    each open connection ends cleanly after its next response.
/// 3. <see cref="WaitUntilQuietAsync"/> returns once no connection is left, or once no request has
///    started and no connection been accepted for <see cref="QuietPeriod"/> (what remains is
///    idle), or after the time limit. The accept pending when draining begins is cancelled, but
///    may still hand over a connection the kernel gave it just before, whose request has not
///    arrived yet: counting accepts as activity gives that request the quiet period to start,
///    where closing the connection as idle would fail it.
///    Kestrel counts such a connection only once its pipeline starts, on the thread pool; until
///    then none seems left, so that exit waits for <see cref="AcceptGrace"/> after the last accept.
/// 4. Only then is Kestrel stopped.
///
/// Measured with bench-style load (wrk -c16, 5 SIGHUPs, 2 workers): see the commit that added this.
/// </summary>
internal sealed class ConnectionDrain
{
    private static readonly TimeSpan QuietPeriod = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan AcceptGrace = TimeSpan.FromMilliseconds(50);

    private readonly TaskCompletionSource _draining = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _drainingToken = new();
    private int _connections;
    private long _connectionsHandled, _connectionsFailed;
    private int _requestsInFlight;
    private long _lastActivity;   // when a request last started or a connection was last accepted

    /// <summary>False once draining: responses then close their connection.</summary>
    public bool KeepAlive { get; private set; } = true;

    /// <summary>Cancelled when draining begins: long-lived exchanges (websockets) end themselves.</summary>
    public CancellationToken Draining => _drainingToken.Token;

    /// <summary>The socket transport, with listeners that stop accepting when draining begins.</summary>
    public sealed class Transport(IConnectionListenerFactory sockets, ConnectionDrain drain) : IConnectionListenerFactory
    {
        public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default) =>
            new PausableListener(await sockets.BindAsync(endpoint, cancellationToken), drain);
    }

    /// <summary>
    /// Kestrel connection middleware, first in the pipeline: counts open connections, and for
    /// <c>--metrics</c> the connections accepted and those that failed: the pipeline threw, or, with
    /// <paramref name="tls"/>, the TLS handshake never completed (<see cref="HandshakeDone"/> was not
    /// reached; Kestrel's TLS middleware logs a failed handshake and closes without throwing).
    /// </summary>
    public Func<ConnectionDelegate, ConnectionDelegate> Count(bool tls) => next => async connection =>
    {
        Interlocked.Increment(ref _connections);
        Interlocked.Increment(ref _connectionsHandled);
        try
        {
            await next(connection);
            if (tls && !connection.Items.ContainsKey(HandshakeKey)) Interlocked.Increment(ref _connectionsFailed);
        }
        catch
        {
            Interlocked.Increment(ref _connectionsFailed);
            throw;
        }
        finally { Interlocked.Decrement(ref _connections); }
    };

    private static readonly object HandshakeKey = new();

    /// <summary>Kestrel connection middleware after the TLS one: the handshake succeeded.</summary>
    public static ConnectionDelegate HandshakeDone(ConnectionDelegate next) => connection =>
    {
        connection.Items[HandshakeKey] = null;
        return next(connection);
    };

    /// <summary>For <c>--metrics</c>: open, accepted and failed connections.</summary>
    public Metrics.ConnectionCounts Connections =>
        new(Volatile.Read(ref _connections), Interlocked.Read(ref _connectionsHandled), Interlocked.Read(ref _connectionsFailed));

    /// <summary>Per request, on the Kestrel side.</summary>
    public void RequestStarted()
    {
        Interlocked.Increment(ref _requestsInFlight);
        Volatile.Write(ref _lastActivity, Environment.TickCount64);
    }

    public void RequestEnded() => Interlocked.Decrement(ref _requestsInFlight);

    public int RequestsInFlight => Volatile.Read(ref _requestsInFlight);

    public void BeginDrain()
    {
        KeepAlive = false;
        _draining.TrySetResult();
        _drainingToken.Cancel();
    }

    public async Task WaitUntilQuietAsync(TimeSpan limit)
    {
        var deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
        while (Environment.TickCount64 < deadline)
        {
            var sinceActivity = Environment.TickCount64 - Volatile.Read(ref _lastActivity);
            if (Volatile.Read(ref _connections) == 0 && sinceActivity >= AcceptGrace.TotalMilliseconds) return;
            if (Volatile.Read(ref _requestsInFlight) == 0 && sinceActivity >= QuietPeriod.TotalMilliseconds) return;
            await Task.Delay(20);
        }
    }

    /// <summary>Accepts until draining begins, then hands Kestrel no more connections.</summary>
    private sealed class PausableListener(IConnectionListener inner, ConnectionDrain drain) : IConnectionListener
    {
        private readonly CancellationTokenSource _stop = new();

        public EndPoint EndPoint => inner.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            if (!drain._draining.Task.IsCompleted)
            {
                // The accept is cancelled when draining begins, so that connections arriving from
                // then on stay queued on the shared socket for the other workers. (One the kernel
                // handed over just before still comes back, and is served.)
                using var accepting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, drain.Draining);
                try
                {
                    var connection = await inner.AcceptAsync(accepting.Token);
                    if (connection is not null) Volatile.Write(ref drain._lastActivity, Environment.TickCount64);
                    return connection;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested) { }
            }
            // Not accepting: wait for Kestrel to unbind, then report the listener closed.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, cancellationToken);
            try { await Task.Delay(Timeout.Infinite, stop.Token); }
            catch (OperationCanceledException) { }
            return null;
        }

        public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            await _stop.CancelAsync();
            await inner.UnbindAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await inner.DisposeAsync();
            _stop.Dispose();
        }
    }
}
