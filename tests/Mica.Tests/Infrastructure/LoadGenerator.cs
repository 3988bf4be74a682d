using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// A bounded HTTP/1.1 load generator over <see cref="RawConnection"/>: <c>concurrency</c> loops,
/// each sending GET requests one after the other until stopped. Strict, like wrk: a request fails
/// when the connection cannot be made, breaks (reset, end of stream) before its whole response,
/// times out, or gets a status other than 200. With keep-alive a connection is reused until a
/// response says <c>Connection: close</c> (then a new one is opened; not a failure); without, every
/// request sends <c>Connection: close</c> on a new connection. No retry: HttpClient's silent retry
/// on a reused connection would hide exactly what is measured here. Like every HTTP client, a loop
/// checks an idle keep-alive connection before reusing it: one the server has already closed is
/// replaced (counted in <see cref="ClosedWhileIdle"/>, not a failure); a request sent is never retried.
/// Failures are also counted by <see cref="LoadFailure"/> kind, which tells a request the server
/// never took (refused, or closed before any byte of a response) from one it broke.
/// </summary>
public sealed class LoadGenerator : IAsyncDisposable
{
    private readonly string _host;
    private readonly int _port;
    private readonly string _path;
    private readonly bool _keepAlive;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly ConcurrentQueue<string> _failures = new();
    private readonly ConcurrentDictionary<string, int> _bodies = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long[] _failedByKind = new long[Enum.GetValues<LoadFailure>().Length];
    private long _succeeded, _failed, _connections, _closedWhileIdle;

    public long Succeeded => Interlocked.Read(ref _succeeded);
    public long Failed => Interlocked.Read(ref _failed);
    public long FailedWith(LoadFailure kind) => Interlocked.Read(ref _failedByKind[(int)kind]);
    public long Connections => Interlocked.Read(ref _connections);
    /// <summary>Keep-alive connections found closed by the server before a request was sent on them.</summary>
    public long ClosedWhileIdle => Interlocked.Read(ref _closedWhileIdle);
    /// <summary>How many responses had each body (e.g. each worker's pid).</summary>
    public IReadOnlyDictionary<string, int> Bodies => new Dictionary<string, int>(_bodies);
    /// <summary>The first failures, described (time, loop, request number on the connection, error).</summary>
    public IReadOnlyList<string> FailureDetails => [.. _failures];
    /// <summary>Each request is bounded by this.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    private LoadGenerator(string host, int port, string path, bool keepAlive)
    {
        _host = host;
        _port = port;
        _path = path;
        _keepAlive = keepAlive;
    }

    public static LoadGenerator Start(MicaProcess mica, int concurrency, bool keepAlive, string path = "/pid") =>
        Start(mica.Host, mica.Port, concurrency, keepAlive, path);

    public static LoadGenerator Start(string host, int port, int concurrency, bool keepAlive, string path = "/pid")
    {
        var load = new LoadGenerator(host, port, path, keepAlive);
        for (var i = 0; i < concurrency; i++)
        {
            var loop = i;
            load._loops.Add(Task.Run(() => load.LoopAsync(loop)));
        }
        return load;
    }

    private async Task LoopAsync(int loop)
    {
        RawConnection? connection = null;
        var onConnection = 0;
        var lastResponse = TimeSpan.Zero;   // on the current connection
        TimeSpan? idle = null;               // how long the connection had been idle when this request was sent
        var request = Encoding.ASCII.GetBytes(_keepAlive
            ? RawConnection.Get(_path)
            : RawConnection.Get(_path, "Connection: close"));
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                if (connection is not null && connection.IsClosedByPeer())
                {
                    Interlocked.Increment(ref _closedWhileIdle);
                    connection.Dispose();
                    connection = null;
                }
                if (connection is null)
                {
                    try { connection = await RawConnection.ConnectAsync(_host, _port); }
                    catch (Exception e) when (e is SocketException or OperationCanceledException)
                    {
                        Fail(LoadFailure.Refused, loop, 0, null, $"connect: {e.GetType().Name}: {e.Message}");
                        continue;
                    }
                    connection.Timeout = RequestTimeout;
                    Interlocked.Increment(ref _connections);
                    onConnection = 0;
                }
                onConnection++;
                idle = onConnection > 1 ? _clock.Elapsed - lastResponse : null;
                RawResponse response;
                var received = connection.BytesReceived;
                try
                {
                    await connection.SendAsync(request);
                    response = await connection.ReadResponseAsync();
                }
                catch (IOException e) when (connection.BytesReceived == received)
                {
                    Fail(LoadFailure.Unanswered, loop, onConnection, idle, $"{e.GetType().Name}: {e.Message}");
                    connection.Dispose();
                    connection = null;
                    continue;
                }
                lastResponse = _clock.Elapsed;
                if (response.Status != 200)
                {
                    Fail(LoadFailure.Status, loop, onConnection, idle, $"status {response.Status} {response.Reason}: {Truncate(response.BodyText)}");
                }
                else
                {
                    Interlocked.Increment(ref _succeeded);
                    _bodies.AddOrUpdate(response.BodyText, 1, (_, n) => n + 1);
                }
                var closes = response.Header("connection")?.Contains("close", StringComparison.OrdinalIgnoreCase) == true;
                if (!_keepAlive || closes)
                {
                    connection.Dispose();
                    connection = null;
                }
            }
            catch (Exception e)
            {
                Fail(LoadFailure.Broken, loop, onConnection, idle, $"{e.GetType().Name}: {e.Message}");
                connection?.Dispose();
                connection = null;
            }
        }
        connection?.Dispose();
    }

    private void Fail(LoadFailure kind, int loop, int onConnection, TimeSpan? idle, string what)
    {
        Interlocked.Increment(ref _failed);
        Interlocked.Increment(ref _failedByKind[(int)kind]);
        var idleText = idle is { } i ? $", sent {i.TotalMilliseconds:0} ms after the previous response on it" : "";
        if (_failures.Count < 20)
            _failures.Enqueue($"{DateTime.UtcNow:HH:mm:ss.fff} (+{_clock.Elapsed.TotalSeconds:0.000} s) loop {loop}, request #{onConnection} on its connection{idleText}: {kind}: {what}");
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "...";

    /// <summary>Waits until at least <paramref name="count"/> more requests succeeded than now (bounded).</summary>
    public async Task WaitForMoreSuccessesAsync(long count, TimeSpan? timeout = null)
    {
        var target = Succeeded + count;
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(15);
        while (Succeeded < target)
        {
            if (clock.Elapsed > limit)
                throw new TimeoutException($"load: {Succeeded} succeeded, {Failed} failed; not {count} more successes within {limit.TotalSeconds:0.#} s\n{Summary()}");
            if (_loops.All(t => t.IsCompleted)) throw new InvalidOperationException("load: every loop ended\n" + Summary());
            await Task.Delay(10);
        }
    }

    /// <summary>Stops the loops (each finishes its current request, bounded by the request timeout).</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        var all = Task.WhenAll(_loops);
        if (await Task.WhenAny(all, Task.Delay(RequestTimeout + TimeSpan.FromSeconds(5))) != all)
            throw new TimeoutException("load: the loops did not end\n" + Summary());
        await all;
    }

    public string Summary() =>
        $"{(_keepAlive ? "keep-alive" : "new connection per request")}: {Succeeded} succeeded, {Failed} failed "
        + $"({string.Join(", ", Enum.GetValues<LoadFailure>().Select(k => $"{k} {FailedWith(k)}"))}), {Connections} connections ({ClosedWhileIdle} found closed by the server while idle), "
        + $"responses by body: {string.Join(", ", Bodies.OrderBy(b => b.Key).Select(b => $"{b.Key}={b.Value}"))}"
        + (FailureDetails.Count == 0 ? "" : "\nfirst failures:\n  " + string.Join("\n  ", FailureDetails));

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            try { await StopAsync(); }
            catch (TimeoutException) { }
        }
        _stop.Dispose();
    }
}

/// <summary>How a request of a <see cref="LoadGenerator"/> failed.</summary>
public enum LoadFailure
{
    /// <summary>No connection could be made (refused, or not accepted in time).</summary>
    Refused,
    /// <summary>The connection ended (closed or reset) before any byte of a response: the server never took the request.</summary>
    Unanswered,
    /// <summary>A response other than 200.</summary>
    Status,
    /// <summary>Anything else: a response cut short, a timeout, a malformed response.</summary>
    Broken,
}
