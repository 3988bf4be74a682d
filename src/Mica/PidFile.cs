using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using static Mica.Server.Native.Libc;

namespace Mica;

/// <summary>
/// <c>--pid-file</c>: the master's PID in decimal followed by a newline (what most daemons write,
/// and what <c>kill $(cat file)</c> reads), mode 0644 whatever the umask.
///
/// - Atomic: written to a temporary file in the same directory, fsynced, then renamed over the
///   path, so a reader never sees it empty or partial.
/// - Exclusive: the temporary file is locked (<c>flock</c>) before the rename and the lock is held
///   for the master's life, so the file at the path is always the locked one. A second instance
///   fails fast naming the PID inside; a file nobody holds a lock on is stale and is replaced with
///   a warning. Two instances racing on a missing file: after the rename each checks that the
///   path is still its own inode, and the loser gives up.
/// - Removed on every orderly exit, only if it is still ours.
/// </summary>
internal sealed class PidFile : IDisposable
{
    private const int Mode0644 = 0x1A4;

    private readonly string _path;
    private readonly int _fd;
    private readonly (ulong Device, ulong Inode) _identity;
    private readonly int _pid;

    private PidFile(string path, int fd, (ulong, ulong) identity, int pid)
    {
        _path = path;
        _fd = fd;
        _identity = identity;
        _pid = pid;
    }

    /// <exception cref="StartupError">when another instance holds it, or it cannot be written.</exception>
    public static PidFile Create(string path)
    {
        path = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(directory))
            throw new StartupError($"cannot write PID file {path}: directory {directory} does not exist");
        CheckExisting(path);

        var pid = Environment.ProcessId;
        var temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{pid}.tmp");
        var fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, Mode0644);
        if (fd < 0) throw new StartupError($"cannot write PID file {path}: {Error()}");
        try
        {
            if (fchmod(fd, Mode0644) != 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
                throw new StartupError($"cannot write PID file {path}: {Error()}");
            var content = Encoding.ASCII.GetBytes(pid.ToString(CultureInfo.InvariantCulture) + "\n");
            if (Write(fd, content) != content.Length || fsync(fd) != 0)
                throw new StartupError($"cannot write PID file {path}: {Error()}");
            if (rename(temporary, path) != 0)
                throw new StartupError($"cannot write PID file {path}: {Error()}");
        }
        catch
        {
            unlink(temporary);
            close(fd);
            throw;
        }
        var identity = Identity(fd);
        if (IdentityOf(path) != identity)
        {
            close(fd);
            throw new StartupError($"PID file {path} was taken by another instance starting at the same time");
        }
        return new PidFile(path, fd, identity, pid);
    }

    /// <summary>Refuses a PID file another live instance holds; warns about a stale one.</summary>
    private static void CheckExisting(string path)
    {
        var fd = open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return;   // no file: nothing to check
        try
        {
            var content = ReadContent(fd);
            if (flock(fd, LOCK_EX | LOCK_NB) != 0)
                throw new StartupError($"another instance is running with PID file {path} (pid {content})");
            Server.Log.Warning(int.TryParse(content, NumberStyles.None, CultureInfo.InvariantCulture, out var old)
                ? $"Replacing stale PID file {path} (pid {old} no longer holds it)"
                : $"Replacing PID file {path}: it held no PID ('{content}') and nobody holds it");
        }
        finally
        {
            close(fd);
        }
    }

    private static unsafe nint Write(int fd, byte[] content)
    {
        fixed (byte* p = content) return write(fd, p, content.Length);
    }

    private static unsafe string ReadContent(int fd)
    {
        var buffer = stackalloc byte[64];
        var n = read(fd, buffer, 64);
        return n <= 0 ? "" : Encoding.ASCII.GetString(buffer, (int)n).Trim();
    }

    /// <summary>Removes the file if it is still ours (same inode, same PID), then drops the lock.</summary>
    public void Dispose()
    {
        try
        {
            if (IdentityOf(_path) == _identity)
            {
                var fd = open(_path, O_RDONLY | O_CLOEXEC, 0);
                if (fd >= 0)
                {
                    var content = ReadContent(fd);
                    close(fd);
                    if (content == _pid.ToString(CultureInfo.InvariantCulture)) unlink(_path);
                }
            }
            else if (!Directory.Exists(Path.GetDirectoryName(_path)))
            {
                Server.Log.Warning($"PID file directory of {_path} is gone; nothing to remove");
            }
        }
        finally
        {
            close(_fd);
        }
    }

    private static (ulong, ulong) IdentityOf(string path)
    {
        var fd = open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return default;
        try { return Identity(fd); }
        finally { close(fd); }
    }

    /// <summary>(st_dev, st_ino) from fstat: the first two fields of struct stat on Linux x86-64 and arm64.</summary>
    private static unsafe (ulong, ulong) Identity(int fd)
    {
        var stat = stackalloc ulong[32];   // struct stat is 144 (x86-64) or 128 (arm64) bytes
        return fstat(fd, stat) == 0 ? (stat[0], stat[1]) : default;
    }

    private static string Error() => Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError());
}
