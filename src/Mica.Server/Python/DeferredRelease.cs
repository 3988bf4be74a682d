using System.Collections.Concurrent;

namespace Mica.Server.Python;

/// <summary>
/// References to Python objects that a thread without the GIL is done with (a Kestrel thread that
/// has copied a response body out of a bytes object). Taking the GIL to drop each one would stall
/// the Python threads, so they are queued and dropped in bulk by the next thread that holds the GIL
/// anyway: the event loop on each wake-up, a WSGI thread before each batch of requests and after
/// each streamed chunk. When none comes by (an idle WSGI worker), a timer takes the GIL to drop
/// them, so no reference is held much longer than <see cref="MaxDelay"/>.
/// </summary>
internal static unsafe class DeferredRelease
{
    private static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(1);
    private static readonly ConcurrentQueue<nint> Pending = new();
    private static readonly Timer Sweeper = new(_ => Sweep());
    private static int _sweepArmed;

    /// <summary>Any thread: <paramref name="reference"/> (owned) is dropped later, under the GIL.</summary>
    public static void Add(nint reference)
    {
        Pending.Enqueue(reference);
        if (Interlocked.Exchange(ref _sweepArmed, 1) == 0) Sweeper.Change(MaxDelay, Timeout.InfiniteTimeSpan);
    }

    /// <summary>GIL held.</summary>
    public static void Run()
    {
        while (Pending.TryDequeue(out var reference)) Py.DecRef(reference);
    }

    /// <summary>Timer thread. Disarmed before looking: a reference added from here on arms it again.</summary>
    private static void Sweep()
    {
        Volatile.Write(ref _sweepArmed, 0);
        if (Pending.IsEmpty) return;
        var gil = Py.GILStateEnsure();
        try
        {
            Run();
        }
        finally
        {
            Py.GILStateRelease(gil);
        }
    }
}
