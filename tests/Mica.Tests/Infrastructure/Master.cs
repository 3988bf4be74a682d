using System.Diagnostics;
using System.Runtime.InteropServices;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>Helpers for the master-process tests (several workers, signals, PID file, systemd).</summary>
public static partial class Master
{
    /// <summary>GET <paramref name="path"/> on a new connection to an endpoint that ends its worker
    /// (os._exit) without answering; returns once the connection is closed.</summary>
    public static async Task ExitWorkerAsync(MicaProcess mica, string path)
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(RawConnection.Get(path, "Connection: close"));
        Assert.True(await connection.WaitClosedAsync(TimeSpan.FromSeconds(10)), "the worker did not end");
    }

    public const string PidApp = "pid_app:app";

    /// <summary>Starts mica with <c>--workers N</c> and waits until N workers reported ready.</summary>
    public static async Task<MicaProcess> StartAsync(int workers, IEnumerable<string>? options = null, string app = PidApp,
        IDictionary<string, string?>? environment = null)
    {
        var mica = await MicaProcess.LaunchAsync(["--workers", workers.ToString(), .. options ?? [], app], environment);
        try
        {
            await mica.WaitForReadyWorkersAsync(workers);
            return mica;
        }
        catch
        {
            await mica.DisposeAsync();
            throw;
        }
    }

    /// <summary>GET <paramref name="path"/> on a new connection (Connection: close); the body of a 200.</summary>
    public static async Task<string> GetOnNewConnectionAsync(MicaProcess mica, string path = "/pid")
    {
        await using var connection = await RawConnection.ConnectAsync(mica);
        await connection.SendAsync(RawConnection.Get(path, "Connection: close"));
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"GET {path}: {response.Status} {response.BodyText}\n{mica.Dump()}");
        return response.BodyText;
    }

    /// <summary>SIGINT, exit code <paramref name="expected"/>, and no worker left behind.</summary>
    public static async Task StopAndCheckAsync(MicaProcess mica, int expected = 0)
    {
        var exitCode = await mica.StopAsync();
        Assert.True(exitCode == expected, $"exit code {exitCode}, expected {expected}\n{mica.Dump()}");
        await mica.AssertNoOrphansAsync();
    }

    /// <summary>/proc/PID/comm without its newline.</summary>
    public static string Comm(int pid) => File.ReadAllText($"/proc/{pid}/comm").TrimEnd('\n');

    /// <summary>Polls (bounded) until <paramref name="condition"/> holds; fails with <paramref name="what"/>.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"not within {limit.TotalSeconds:0.#} s: {what}");
            await Task.Delay(20);
        }
    }

    /// <summary>The stderr lines of <paramref name="mica"/> that contain <paramref name="text"/>.</summary>
    public static IReadOnlyList<string> LinesWith(MicaProcess mica, string text) =>
        [.. mica.StderrLines.Where(l => l.Contains(text, StringComparison.Ordinal))];

    /// <summary>(st_dev, st_ino) of a path, or default when it does not exist.</summary>
    public static unsafe (ulong Device, ulong Inode) Identity(string path)
    {
        var fd = open(path, 0x80000 /* O_RDONLY | O_CLOEXEC */, 0);
        if (fd < 0) return default;
        try
        {
            var stat = stackalloc ulong[32];   // struct stat: 144 bytes on x86-64, 128 on arm64; dev and ino first
            return fstat(fd, stat) == 0 ? (stat[0], stat[1]) : default;
        }
        finally
        {
            _ = close(fd);
        }
    }

    /// <summary>A pid that no process has any more (a process started and reaped here).</summary>
    public static async Task<int> DeadPidAsync()
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/true") { UseShellExecute = false })!;
        var pid = p.Id;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await p.WaitForExitAsync(cts.Token);
        return pid;
    }

    /// <summary>A new empty directory under /tmp (short paths: Unix socket names must fit in 108 bytes).</summary>
    public static DirectoryInfo TempDir() => Directory.CreateTempSubdirectory("mica-test-");

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int fstat(int fd, ulong* stat);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
