using System.Collections.Concurrent;
using Mica.Server.Native;
using Mica.Server.Python;

namespace Mica.Server.Hosting;

/// <summary>Something the Python thread must do on behalf of a Kestrel thread; runs with the GIL held.</summary>
internal interface IPythonWork
{
    /// <summary><paramref name="kind"/> is the producer's own code for what happened.</summary>
    void RunOnPythonThread(int kind);
}

/// <summary>
/// The hand-off from Kestrel threads to the one Python thread. Producers enqueue without locks and
/// write the eventfd only on the idle→busy transition; the event loop watches the eventfd
/// (<c>loop.add_reader</c>) and drains everything queued in one GIL hold. Under load one wake-up
/// serves a whole batch of requests.
/// </summary>
internal sealed unsafe class PythonLoop : IDisposable
{
    private readonly ConcurrentQueue<(IPythonWork Work, int Kind)> _queue = new();
    private int _wakePending;

    public int EventFd { get; }

    /// <summary>Work posted and not yet taken by the Python thread (for <c>--metrics</c>).</summary>
    public int Pending => _queue.Count;

    public PythonLoop()
    {
        EventFd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (EventFd < 0) throw new IOException("eventfd failed");
    }

    /// <summary>Any thread.</summary>
    public void Post(IPythonWork work, int kind)
    {
        _queue.Enqueue((work, kind));
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            ulong one = 1;
            Libc.write(EventFd, &one, sizeof(ulong));
        }
    }

    /// <summary>Python thread, from the event loop's reader callback.</summary>
    public void Drain()
    {
        ulong count;
        Libc.read(EventFd, &count, sizeof(ulong));
        // Reset before draining: a producer that enqueues after this point wakes us again,
        // one that enqueued before it is drained below.
        Volatile.Write(ref _wakePending, 0);
        DeferredRelease.Run();
        while (_queue.TryDequeue(out var item))
        {
            try
            {
                item.Work.RunOnPythonThread(item.Kind);
            }
            catch (Exception e)
            {
                Log.Error($"internal error on the Python thread: {e}");
            }
        }
    }

    public void Dispose() => Libc.close(EventFd);
}
