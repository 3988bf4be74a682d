using System.Collections.Concurrent;
using System.Text;

namespace Mica.Server.Http;

/// <summary>
/// The access log (<c>--access-log</c>): one line per request in <see cref="AccessLogFormat"/>, on
/// stdout as Granian writes it, or where <c>--log-config</c> sends the access logger, in that
/// logger's formatter (<see cref="LogConfig.ParseAccess"/>). A request only renders and queues its line; a writer thread wakes
/// when the queue stops being empty, lets lines gather for <see cref="Gather"/>, and writes them in
/// batches of whole lines of at most 4 KiB (PIPE_BUF) per write: lines from several worker processes
/// sharing stdout never interleave mid-line, a request never waits for the terminal, and under load
/// a write serves hundreds of requests.
/// </summary>
internal sealed class AccessLog
{
    private const int BatchBytes = 4096;
    private static readonly TimeSpan Gather = TimeSpan.FromMilliseconds(20);

    private const string LoggerName = "mica.access";

    private readonly AccessLogFormat _format;
    private readonly LogConfig _destination;
    private readonly LogFormatter _formatter;
    private Stream _output;   // replaced only by the writer thread (Reopen asks it to)
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _writer;
    private int _wakePending;
    private volatile bool _completing, _reopen;

    public AccessLog(AccessLogFormat format, LogConfig destination)
    {
        _format = format;
        _destination = destination;
        _formatter = destination.Formatter();
        _output = destination.OpenOutput();
        _writer = new Thread(WriteLoop) { Name = "mica-access-log", IsBackground = true };
        _writer.Start();
    }

    public void Record(in AccessLogEntry entry)
    {
        var line = _format.Render(entry);
        _lines.Enqueue(_formatter.IsMessageOnly ? line : _formatter.Render(LoggerName, LogLevel.Info, line, entry.Time));
        if (Interlocked.Exchange(ref _wakePending, 1) == 0) _wake.Release();
    }

    /// <summary>SIGUSR1: the writer opens its file again before its next batch (logrotate moved it away).</summary>
    public void Reopen()
    {
        _reopen = true;
        _wake.Release();
    }

    /// <summary>Writes what is queued and stops the writer (worker shutdown).</summary>
    public void Complete()
    {
        _completing = true;
        _wake.Release();
        _writer.Join(TimeSpan.FromSeconds(5));
    }

    private void WriteLoop()
    {
        var batch = new byte[BatchBytes];
        while (true)
        {
            _wake.Wait();
            if (!_completing) Thread.Sleep(Gather);
            Volatile.Write(ref _wakePending, 0);   // lines queued from now on wake us again
            if (_reopen)
            {
                _reopen = false;
                (_output, var error) = _destination.Reopen(_output);
                if (error is not null) Log.Warning($"cannot reopen the access log file, writing on to the old one: {error}");
            }
            WriteQueued(batch);
            if (_completing)
            {
                WriteQueued(batch);
                return;
            }
        }
    }

    private void WriteQueued(byte[] batch)
    {
        var used = 0;
        while (_lines.TryDequeue(out var line))
        {
            var bytes = Encoding.UTF8.GetByteCount(line) + 1;
            if (used > 0 && used + bytes > BatchBytes)
            {
                _output.Write(batch, 0, used);
                used = 0;
            }
            if (bytes > BatchBytes)
            {
                _output.Write(Encoding.UTF8.GetBytes(line + "\n"));   // longer than one atomic write: alone
                continue;
            }
            used += Encoding.UTF8.GetBytes(line, batch.AsSpan(used));
            batch[used++] = (byte)'\n';
        }
        if (used > 0) _output.Write(batch, 0, used);
    }
}
