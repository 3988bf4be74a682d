using System.Net.Sockets;
using System.Text;
using Mica.Server;
using Mica.Server.Native;

namespace Mica;

/// <summary>
/// The Python API's hooks (<c>mica.Mica</c>'s <c>on_startup</c>, <c>on_reload</c>, <c>on_shutdown</c>,
/// Granian's). The Python process that starts the master hands it one end of a socket pair in
/// <c>MICA_HOOKS_FD</c>; at each of Granian's hook points the master writes the event's name as a
/// line and waits for <c>ok</c>, the Python side's word that its hooks have run. So the hooks run
/// where Granian runs them: startup once the socket is bound and before the first workers, reload
/// before workers are replaced (SIGHUP or a file change), shutdown once the workers have stopped.
/// Without the variable it does nothing; a channel that fails is dropped with a warning, never the server.
/// </summary>
internal sealed class HookChannel : IDisposable
{
    public const string Variable = "MICA_HOOKS_FD";

    private Socket? _socket;

    private HookChannel(Socket? socket) => _socket = socket;

    public static HookChannel FromEnvironment()
    {
        var value = Environment.GetEnvironmentVariable(Variable);
        if (value is null) return new HookChannel(null);
        Environment.SetEnvironmentVariable(Variable, null);    // for this process only, not its workers
        // Close-on-exec, or every worker (and the app's subprocesses) would hold the channel open.
        if (int.TryParse(value, out var fd) && fd >= 3 && Libc.fcntl(fd, Libc.F_SETFD, Libc.FD_CLOEXEC) == 0)
        {
            try { return new HookChannel(new Socket(new SafeSocketHandle(fd, ownsHandle: true))); }
            catch (SocketException) { }
        }
        Log.Warning($"{Variable}={value} is not an open socket: the Python hooks will not run");
        return new HookChannel(null);
    }

    /// <summary>Runs the Python side's hooks for <paramref name="name"/> (startup, reload, shutdown); returns once they ran.</summary>
    public void Run(string name)
    {
        if (_socket is null) return;
        try
        {
            _socket.Send(Encoding.ASCII.GetBytes(name + "\n"));
            var answer = new byte[3];
            var read = 0;
            while (read < answer.Length)
            {
                var n = _socket.Receive(answer, read, answer.Length - read, SocketFlags.None);
                if (n == 0) throw new IOException("closed by the Python side");
                read += n;
            }
            if (!answer.AsSpan().SequenceEqual("ok\n"u8)) throw new IOException("unexpected answer");
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            Log.Warning($"Python hooks channel: {e.Message}; the hooks will not run any more");
            Dispose();
        }
    }

    public void Dispose()
    {
        _socket?.Dispose();
        _socket = null;
    }
}
