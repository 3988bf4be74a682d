using System.Net.Sockets;
using System.Text;

namespace Mica;

/// <summary>
/// sd_notify for <c>Type=notify</c> (and <c>notify-reload</c>) units: READY=1 once every worker is
/// serving, RELOADING=1 on SIGHUP (READY=1 again when the replacement is done), STOPPING=1.
/// Does nothing when <c>NOTIFY_SOCKET</c> is not set.
/// </summary>
internal sealed class SystemdNotifier
{
    private readonly string? _socketPath;

    private SystemdNotifier(string? socketPath) => _socketPath = socketPath;

    public static SystemdNotifier FromEnvironment()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path)) return new SystemdNotifier(null);
        // "@name" is an abstract socket: its name starts with a NUL byte.
        return new SystemdNotifier(path[0] == '@' ? "\0" + path[1..] : path);
    }

    public void Notify(string state)
    {
        if (_socketPath is null) return;
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(_socketPath));
        }
        catch (SocketException e)
        {
            Server.Log.Warning($"sd_notify to {_socketPath.TrimStart('\0')} failed: {e.Message}");
        }
    }

    /// <summary>CLOCK_MONOTONIC in microseconds, which systemd wants with RELOADING=1.</summary>
    public static long MonotonicMicroseconds() => (long)(System.Diagnostics.Stopwatch.GetTimestamp() / (System.Diagnostics.Stopwatch.Frequency / 1_000_000.0));
}
