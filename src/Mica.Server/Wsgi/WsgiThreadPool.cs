using System.Diagnostics;
using Mica.Server.Python;

namespace Mica.Server.Wsgi;

/// <summary>
/// The <c>mica-wsgi-N</c> threads that run the WSGI app (<c>--blocking-threads</c> at most), started
/// on demand and ended after <c>--blocking-threads-idle-timeout</c> without work. Idle threads are
/// woken last-in first-out: a light load keeps reusing a few warm threads and lets the others time out.
///
/// A busy thread is either running Python (holding the GIL, or waiting for it) or blocked with the GIL
/// released (in a socket wait, <c>time.sleep</c>, a database call). Only the second kind is helped by
/// more threads; the first is only slowed by GIL contention. The two cannot be told apart from here,
/// so beyond <see cref="EagerThreads"/> a new thread is started only when the queue has not moved for
/// <see cref="StarvationDelay"/>: every thread is stuck. Blocking apps grow their pool within
/// milliseconds; CPU-bound ones keep a couple of threads taking queued requests in batches.
///
/// Each thread has one Python thread state for its whole life and takes the GIL once per batch:
/// after a request it goes straight on to the next queued one, up to <see cref="BatchLimit"/>.
///
/// With <c>--metrics</c>, each thread adds up, per batch, the time it waited for work (idle), waited
/// for the GIL, and then held it and handed over the batch's responses (busy): Granian's
/// <c>blocking_idle_cumulative</c>, <c>py_wait_cumulative</c> and <c>blocking_busy_cumulative</c>.
/// </summary>
internal sealed class WsgiThreadPool
{
    public const string ThreadNamePrefix = "mica-wsgi-";

    /// <summary>Requests run per GIL hold at most, so that queued work spreads over threads.</summary>
    private const int BatchLimit = 16;

    /// <summary>Threads started as soon as work finds none idle.</summary>
    private const int EagerThreads = 2;

    /// <summary>How long the queue may stand still, with work in it, before another thread is started.</summary>
    private static readonly TimeSpan StarvationDelay = TimeSpan.FromMilliseconds(2);

    private readonly Lock _lock = new();
    private readonly Queue<(WsgiExchange Exchange, long Since)> _queue = new();
    private readonly LinkedList<Worker> _idle = new();     // most recently idle first
    private readonly SortedSet<int> _freeNumbers = [];
    private int _threads;
    private bool _stopping;
    private readonly CountdownEvent _running = new(1);
    private readonly Timer _starvation;
    private bool _starvationArmed;
    private long _lastTake;
    private readonly int _maxThreads;
    private readonly TimeSpan _idleTimeout;
    private readonly Func<WsgiEnviron> _newEnviron;
    private readonly bool _measure;
    private long _idleTicks, _busyTicks, _gilWaitTicks;

    /// <param name="newEnviron">Makes a thread's environ builder; called on that thread, GIL held.</param>
    /// <param name="measure">Add up idle, busy and GIL-wait time (<see cref="Stats"/>).</param>
    public WsgiThreadPool(int maxThreads, TimeSpan idleTimeout, Func<WsgiEnviron> newEnviron, bool measure = false)
    {
        _maxThreads = maxThreads;
        _idleTimeout = idleTimeout;
        _newEnviron = newEnviron;
        _measure = measure;
        _starvation = new Timer(_ => CheckStarvation());
    }

    /// <summary>Any thread: threads, queued requests, and (when measuring) the times, in microseconds.</summary>
    public Metrics.BlockingStats Stats()
    {
        int threads, queued;
        lock (_lock)
        {
            threads = _threads;
            queued = _queue.Count;
        }
        if (!_measure) return new(threads, queued);
        static long Micros(ref long ticks) => (long)(Interlocked.Read(ref ticks) * 1_000_000.0 / Stopwatch.Frequency);
        return new(threads, queued, Micros(ref _idleTicks), Micros(ref _busyTicks), Micros(ref _gilWaitTicks));
    }

    /// <summary>Kestrel thread: a request to run.</summary>
    public void Enqueue(WsgiExchange exchange)
    {
        Worker? wake = null;
        lock (_lock)
        {
            _queue.Enqueue((exchange, Stopwatch.GetTimestamp()));
            if (_idle.First is { } first)
            {
                _idle.RemoveFirst();
                wake = first.Value;
            }
            else if (_threads < Math.Min(EagerThreads, _maxThreads) && !_stopping) StartThread();
            else ArmStarvationCheck();
        }
        wake?.Wake.Release();
    }

    // Under _lock.
    private void ArmStarvationCheck()
    {
        if (_starvationArmed || _threads >= _maxThreads || _stopping) return;
        _starvationArmed = true;
        _starvation.Change(StarvationDelay, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Timer: queued work that has waited too long for a thread gets a new one.</summary>
    private void CheckStarvation()
    {
        lock (_lock)
        {
            _starvationArmed = false;
            if (!_queue.TryPeek(out var oldest) || _stopping) return;
            if (_idle.Count == 0 && _threads < _maxThreads && Stopwatch.GetElapsedTime(oldest.Since) >= StarvationDelay
                && Stopwatch.GetElapsedTime(_lastTake) >= StarvationDelay)
                StartThread();
            ArmStarvationCheck();
        }
    }

    /// <summary>After Kestrel has stopped: idle threads end now, busy ones after their request.</summary>
    public void Stop(TimeSpan wait)
    {
        Worker[] idle;
        lock (_lock)
        {
            _stopping = true;
            idle = [.. _idle];
            _idle.Clear();
        }
        foreach (var worker in idle) worker.Wake.Release();
        _starvation.Dispose();
        _running.Signal();
        if (!_running.Wait(wait)) Log.Warning("WSGI threads still busy at shutdown; leaving them");
    }

    // Under _lock.
    private void StartThread()
    {
        var number = _freeNumbers.Count > 0 ? _freeNumbers.Min : _threads + 1;
        _freeNumbers.Remove(number);
        _threads++;
        _running.AddCount();
        var worker = new Worker(this, number);
        new Thread(worker.Run, maxStackSize: 16 * 1024 * 1024) { Name = ThreadNamePrefix + number, IsBackground = true }.Start();
    }

    // Under _lock.
    private void Retire(Worker worker)
    {
        _threads--;
        _freeNumbers.Add(worker.Number);
    }

    /// <summary>The next request for <paramref name="worker"/>, waiting idle if need be; null when the thread should end.</summary>
    private WsgiExchange? Take(Worker worker)
    {
        while (true)
        {
            lock (_lock)
            {
                if (Dequeue() is { } next) return next;
                if (_stopping)
                {
                    Retire(worker);
                    return null;
                }
                _idle.AddFirst(worker.Node);
            }
            if (worker.Wake.Wait(_idleTimeout)) continue;
            lock (_lock)
            {
                if (worker.Node.List is not null)
                {
                    // Still idle, so nobody is about to wake it: it ends.
                    _idle.Remove(worker.Node);
                    Retire(worker);
                    return null;
                }
            }
            worker.Wake.Wait();    // Enqueue took it off the idle list just now; its wake-up is on the way
        }
    }

    /// <summary>Work already queued, taken without waiting (to run it in the same GIL hold).</summary>
    private WsgiExchange? TakeQueued()
    {
        lock (_lock) return Dequeue();
    }

    // Under _lock. Noting when the queue last moved is what tells a busy pool from a stuck one.
    private WsgiExchange? Dequeue()
    {
        if (!_queue.TryDequeue(out var next)) return null;
        _lastTake = Stopwatch.GetTimestamp();
        return next.Exchange;
    }

    private sealed unsafe class Worker
    {
        private readonly WsgiThreadPool _pool;
        public int Number { get; }
        public SemaphoreSlim Wake { get; } = new(0);
        public LinkedListNode<Worker> Node { get; }

        public Worker(WsgiThreadPool pool, int number)
        {
            _pool = pool;
            Number = number;
            Node = new LinkedListNode<Worker>(this);
        }

        public void Run()
        {
            try
            {
                var gilState = Py.GILStateEnsure();     // creates this thread's Python thread state and takes the GIL
                var environ = _pool.NewEnvironSafely();
                var threadState = Py.EvalSaveThread();
                try
                {
                    if (environ is null)
                    {
                        lock (_pool._lock) _pool.Retire(this);
                        return;
                    }
                    var batch = new WsgiExchange[BatchLimit];
                    var measure = _pool._measure;
                    var mark = measure ? Stopwatch.GetTimestamp() : 0;
                    while (_pool.Take(this) is { } exchange)
                    {
                        var count = 0;
                        if (measure) mark = AddTime(ref _pool._idleTicks, mark);
                        Py.EvalRestoreThread(threadState);
                        if (measure) mark = AddTime(ref _pool._gilWaitTicks, mark);
                        DeferredRelease.Run();
                        try
                        {
                            for (var next = exchange; next is not null; next = count < BatchLimit ? _pool.TakeQueued() : null)
                            {
                                batch[count++] = next;
                                next.Run(environ);
                            }
                        }
                        finally
                        {
                            threadState = Py.EvalSaveThread();
                        }
                        // The batch's responses go to be written on the thread pool, while another thread takes the GIL.
                        for (var i = 0; i < count; i++)
                        {
                            batch[i].Deliver();
                            batch[i] = null!;
                        }
                        if (measure) mark = AddTime(ref _pool._busyTicks, mark);
                    }
                }
                finally
                {
                    Py.EvalRestoreThread(threadState);
                    environ?.Dispose();
                    Py.GILStateRelease(gilState);       // deletes the thread state, releases the GIL
                }
            }
            finally
            {
                _pool._running.Signal();
            }
        }
    }

    /// <summary>Adds the time since <paramref name="since"/> to <paramref name="total"/>; returns now.</summary>
    private static long AddTime(ref long total, long since)
    {
        var now = Stopwatch.GetTimestamp();
        Interlocked.Add(ref total, now - since);
        return now;
    }

    /// <summary>GIL held. Null (logged) if it cannot be built, which only a broken interpreter does.</summary>
    private WsgiEnviron? NewEnvironSafely()
    {
        try { return _newEnviron(); }
        catch (Exception e)
        {
            Log.Error($"WSGI thread cannot start: {e}");
            return null;
        }
    }
}
