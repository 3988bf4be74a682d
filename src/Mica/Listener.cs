using System.Net;
using System.Net.Sockets;
using Mica.Server.Native;

namespace Mica;

/// <summary>
/// The listening socket, bound by the master and inherited by every worker, rather than one
/// SO_REUSEPORT socket per worker (Granian's way). Why, measured here:
/// - a worker that stops (reload, restart, scale-down) strands no queued connection, because the
///   others accept from the same queue: 0 failed connections over rolling restarts, against 11 of
///   40k with per-worker SO_REUSEPORT sockets, whose queue dies with the socket; and the master
///   keeps the port while no worker runs;
/// - the cost is spread: new connections spread well (bench/worker_spread.py, 4 workers, a new
///   connection per request: 29/26/23/22% of the work), but a burst of long-lived keep-alive
///   connections is taken mostly by whichever worker is awake (53/17/16/15%), where SO_REUSEPORT's
///   hashing would split it evenly.
/// </summary>
internal sealed class Listener : IDisposable
{
    private const int SolSocket = 1, SoReuseAddr = 2;

    private readonly Socket _socket;
    private readonly string? _unixPath;   // removed on Dispose when ours

    public int Fd { get; }

    private readonly bool _ownsPath;   // a socket file we bound is ours to remove; systemd's is not

    /// <summary>The socket file's path for a Unix domain socket, else null.</summary>
    public string? UnixPath => _unixPath;

    /// <summary>For the log: <c>http://host:port</c>, or <c>unix:PATH</c>.</summary>
    public string Url { get; }

    private Listener(Socket socket, string? unixPath = null, bool ownsPath = true)
    {
        _socket = socket;
        _unixPath = unixPath;
        _ownsPath = ownsPath;
        Url = unixPath is not null ? $"unix:{unixPath}" : socket.LocalEndPoint switch
        {
            IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"http://[{ip.Address}]:{ip.Port}",
            IPEndPoint ip => $"http://{ip.Address}:{ip.Port}",
            var other => other?.ToString() ?? "an inherited socket",
        };
        Fd = (int)socket.SafeHandle.DangerousGetHandle();
        Libc.ClearCloseOnExec(Fd);
    }

    /// <summary>
    /// <c>--uds PATH</c>: a Unix domain socket. A socket file left by a killed run is replaced; one
    /// that a live server still answers on is an error, as is a path that is not a socket.
    /// </summary>
    /// <param name="permissions">The file's mode (<c>--uds-permissions</c>), else what the umask gives.</param>
    /// <exception cref="StartupError">when the socket cannot be bound.</exception>
    public static Listener BindUnix(string path, int? permissions, int backlog)
    {
        path = Path.GetFullPath(path);
        if (Path.Exists(path))
        {
            if (!Libc.IsSocket(path))
                throw new StartupError($"cannot listen on unix:{path}: the path exists and is not a socket");
            using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                try
                {
                    probe.Connect(new UnixDomainSocketEndPoint(path));
                    throw new StartupError($"cannot listen on unix:{path}: another server is listening on it");
                }
                catch (SocketException)
                {
                    // Nobody answers: a stale file from a run that did not clean up.
                }
            }
            File.Delete(path);
        }
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            if (permissions is { } mode) File.SetUnixFileMode(path, (UnixFileMode)mode);
            socket.Listen(backlog);
            return new Listener(socket, path);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            socket.Dispose();
            throw new StartupError($"cannot listen on unix:{path}: {e.Message}");
        }
    }

    /// <exception cref="StartupError">when the address cannot be bound.</exception>
    public static Listener Bind(string host, int port, int backlog)
    {
        var address = Resolve(host, "host");
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR only: restarting right after a stop must not fail on connections in
            // TIME_WAIT. (.NET's ReuseAddress option also sets SO_REUSEPORT on Linux, which would let
            // a second server silently share the port.)
            socket.SetRawSocketOption(SolSocket, SoReuseAddr, BitConverter.GetBytes(1));
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(backlog);
            return new Listener(socket);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new StartupError($"cannot listen on {host}:{port}: {e.Message}");
        }
    }

    /// <summary>An IP address as is, else the first address a name resolves to.</summary>
    /// <param name="what">For the error: which option the host came from.</param>
    /// <exception cref="StartupError">when the name does not resolve.</exception>
    internal static IPAddress Resolve(string host, string what)
    {
        try
        {
            return IPAddress.TryParse(host, out var ip) ? ip : Dns.GetHostAddresses(host)[0];
        }
        catch (Exception e) when (e is SocketException or IndexOutOfRangeException or ArgumentException)
        {
            throw new StartupError($"cannot resolve {what} '{host}'");
        }
    }

    /// <summary>
    /// systemd socket activation: when <c>LISTEN_PID</c> is this process and <c>LISTEN_FDS</c> ≥ 1,
    /// serve the socket systemd passed as fd 3 instead of binding one.
    /// </summary>
    public static Listener? FromSystemd()
    {
        if (Environment.GetEnvironmentVariable("LISTEN_PID") != Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)
            || !int.TryParse(Environment.GetEnvironmentVariable("LISTEN_FDS"), out var count) || count < 1)
            return null;
        const int firstFd = 3;   // SD_LISTEN_FDS_START
        var socket = new Socket(new SafeSocketHandle(firstFd, ownsHandle: true));
        // A unit whose socket went wrong must stop here, in one line, not in every worker.
        try
        {
            if (socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.AcceptConnection) is 0)
                throw new StartupError($"the socket systemd passed (fd {firstFd}, LISTEN_FDS) is not listening");
        }
        catch (SocketException e)
        {
            throw new StartupError($"systemd passed fd {firstFd} (LISTEN_FDS), which is not a listening socket: {e.Message}");
        }
        // Workers are spawned by us, not by systemd: they must not think the sockets are theirs.
        Environment.SetEnvironmentVariable("LISTEN_PID", null);
        Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        // A Unix socket is served as one (scope, log line), but its file stays systemd's.
        return socket.LocalEndPoint is UnixDomainSocketEndPoint unix && unix.ToString() is { Length: > 0 } path
            ? new Listener(socket, path, ownsPath: false)
            : new Listener(socket);
    }

    public void Dispose()
    {
        _socket.Dispose();
        if (_unixPath is not null && _ownsPath)
        {
            try { File.Delete(_unixPath); }
            catch (IOException) { }
        }
    }
}

/// <summary>A start-up failure to report in one line and end with exit code 1.</summary>
internal sealed class StartupError(string message) : Exception(message);
