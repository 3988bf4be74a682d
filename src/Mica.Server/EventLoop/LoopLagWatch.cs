using System.Diagnostics;
using Mica.Server.Hosting;

namespace Mica.Server.EventLoop;

/// <summary>
/// Reports an event loop that stops turning: an async app that calls blocking code (time.sleep, a
/// synchronous database client, CPU-bound work) stalls every request and websocket of its worker,
/// and nothing else would say so. A watch thread posts a tick through the same hand-off as the
/// requests (<see cref="PythonLoop"/>) whenever none is pending, four times a second; the loop
/// takes it with the next batch, which costs no Python code. A tick still waiting after
/// <see cref="Threshold"/> means the loop is blocked: warned at once, again every
/// <see cref="Reminder"/> while it lasts, and once more with the whole duration when the loop
/// takes the tick. The duration is a lower bound by at most one period.
/// </summary>
internal sealed class LoopLagWatch(PythonLoop loop) : IPythonWork
{
    private static readonly TimeSpan Period = TimeSpan.FromMilliseconds(250);
    public static readonly TimeSpan Threshold = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Reminder = TimeSpan.FromSeconds(10);

    private long _postedAt;   // Stopwatch timestamp of the pending tick; 0 when none is pending
    private volatile bool _stopped;

    /// <summary>Starts watching, once the app serves (a slow start-up is not a stall).</summary>
    public void Start() => new Thread(Watch) { Name = "mica-loop-watch", IsBackground = true }.Start();

    public void Stop() => _stopped = true;

    private void Watch()
    {
        long warnedTick = 0;
        var warnedAt = TimeSpan.Zero;
        while (!_stopped)
        {
            Thread.Sleep(Period);
            var posted = Volatile.Read(ref _postedAt);
            if (posted == 0)
            {
                Volatile.Write(ref _postedAt, Stopwatch.GetTimestamp());
                loop.Post(this, 0);
                continue;
            }
            var blocked = Stopwatch.GetElapsedTime(posted);
            if (blocked < Threshold || (warnedTick == posted && blocked - warnedAt < Reminder)) continue;
            warnedTick = posted;
            warnedAt = blocked;
            Log.Warning($"Event loop blocked for {blocked.TotalSeconds:0.0} s so far: the app is running blocking code in an " +
                "async handler or task, and every request and websocket of this worker waits");
        }
    }

    /// <summary>Python thread: the loop took the tick.</summary>
    public void RunOnPythonThread(int kind)
    {
        var blocked = Stopwatch.GetElapsedTime(Volatile.Read(ref _postedAt));
        Volatile.Write(ref _postedAt, 0);
        if (blocked >= Threshold) Log.Warning($"Event loop was blocked for {blocked.TotalSeconds:0.0} s");
    }
}
