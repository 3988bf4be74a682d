using System.Runtime.InteropServices;

namespace Mica.Server.Native;

/// <summary>
/// The libc calls .NET does not expose, for master and workers alike: eventfd, raw fd I/O, fd flags,
/// signals, the file calls the PID file needs (flock, fsync, rename over, fstat), the process
/// name, and dlopen for libpython.
/// </summary>
internal static unsafe partial class Libc
{
    public const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;
    public const int F_GETFD = 1, F_SETFD = 2, FD_CLOEXEC = 1, F_DUPFD_CLOEXEC = 1030;
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80, O_APPEND = 0x400, O_CLOEXEC = 0x80000;
    public const int LOCK_EX = 2, LOCK_NB = 4;
    public const int SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12, SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, void* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, void* buf, nint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int kill(int pid, int sig);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int flock(int fd, int operation);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fchmod(int fd, int mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rename(string from, string to);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlink(string path);

    public const int PR_SET_NAME = 15, RTLD_NOW = 2, RTLD_GLOBAL = 0x100;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int prctl(int option, byte[] arg2, nint arg3, nint arg4, nint arg5);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint dlopen(string path, int flags);

    [LibraryImport("libc")]
    public static partial nint dlerror();

    /// <summary>Fills <paramref name="stat"/>: struct stat, 144 bytes on x86-64 (128 on arm64).</summary>
    [LibraryImport("libc", SetLastError = true)]
    public static partial int fstat(int fd, ulong* stat);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat(string path, ulong* buffer);

    /// <summary>Whether <paramref name="path"/> is a Unix domain socket (S_IFSOCK), following symlinks.</summary>
    public static bool IsSocket(string path)
    {
        var buffer = stackalloc ulong[32];
        if (stat(path, buffer) != 0) return false;
        // st_mode follows st_dev and st_ino on arm64, and st_dev, st_ino and st_nlink on x86-64.
        var modeOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 24 : 16;
        var mode = *(uint*)((byte*)buffer + modeOffset);
        return (mode & 0xF000) == 0xC000;
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint realpath(string path, nint resolved);

    [LibraryImport("libc")]
    private static partial void free(nint pointer);

    /// <summary>The canonical path (every symlink and <c>..</c> resolved), or null if it does not exist.</summary>
    public static string? RealPath(string path)
    {
        var resolved = realpath(path, 0);
        if (resolved == 0) return null;
        try { return Marshal.PtrToStringUTF8(resolved); }
        finally { free(resolved); }
    }

    /// <summary>Lets a descriptor survive exec, so a worker process inherits it.</summary>
    public static void ClearCloseOnExec(int fd)
    {
        var flags = fcntl(fd, F_GETFD, 0);
        if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
            throw new IOException($"fcntl on fd {fd} failed: errno {Marshal.GetLastPInvokeError()}");
    }
}
