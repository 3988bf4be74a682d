using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Channels;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>systemd integration: sd_notify (NOTIFY_SOCKET) and socket activation (LISTEN_FDS).</summary>
public sealed partial class SystemdTests
{
    /// <summary>A bound Unix datagram socket standing in for systemd's notify socket.</summary>
    private sealed class NotifySocket : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        private readonly Channel<string> _messages = Channel.CreateUnbounded<string>();
        private readonly TempDirectory _dir = new();

        public string Path { get; }

        public NotifySocket()
        {
            Path = System.IO.Path.Combine(_dir.Path, "notify");
            _socket.Bind(new UnixDomainSocketEndPoint(Path));
            _ = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                try
                {
                    while (true)
                    {
                        var n = await _socket.ReceiveAsync(buffer, SocketFlags.None);
                        _messages.Writer.TryWrite(Encoding.UTF8.GetString(buffer, 0, n));
                    }
                }
                catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            });
        }

        public async Task<string> NextAsync(MicaProcess mica, TimeSpan timeout)
        {
            using var cts = new CancellationTokenSource(timeout);
            try { return await _messages.Reader.ReadAsync(cts.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"no sd_notify message within {timeout.TotalSeconds:0.#} s\n{mica.Dump()}"); }
        }

        /// <summary>What was received and not read yet (call once the sender has exited).</summary>
        public List<string> Rest()
        {
            var rest = new List<string>();
            while (_messages.Reader.TryRead(out var m)) rest.Add(m);
            return rest;
        }

        public void Dispose()
        {
            _socket.Dispose();
            _dir.Dispose();
        }
    }

    [Fact]
    public async Task Notify_socket_gets_ready_reloading_ready_and_stopping()
    {
        using var notify = new NotifySocket();
        await using var mica = await MicaProcess.LaunchAsync(["--workers", "2", Master.PidApp],
            new Dictionary<string, string?> { ["NOTIFY_SOCKET"] = notify.Path });

        var ready = await notify.NextAsync(mica, MicaProcess.ReadyTimeout);
        Assert.Equal(["READY=1", $"MAINPID={mica.Pid}"], ready.Split('\n'));
        // Sent once every worker is ready: the master logged both before sending it.
        var workers = await mica.WaitForReadyWorkersAsync(2, TimeSpan.FromSeconds(5));
        Assert.Equal(2, workers.Count);
        Assert.Equal("ok", await Master.GetOnNewConnectionAsync(mica, "/"));

        var mark = mica.Mark();
        var before = Stopwatch.GetTimestamp();
        mica.Signal(Libc.SIGHUP);
        var reloading = (await notify.NextAsync(mica, TimeSpan.FromSeconds(10))).Split('\n');
        var after = Stopwatch.GetTimestamp();
        Assert.Equal("RELOADING=1", reloading[0]);
        // systemd's notify-reload wants MONOTONIC_USEC: CLOCK_MONOTONIC (Stopwatch's clock on Linux) in µs.
        var monotonic = Assert.Single(reloading, l => l.StartsWith("MONOTONIC_USEC=", StringComparison.Ordinal));
        Assert.Equal(2, reloading.Length);
        var usec = long.Parse(monotonic["MONOTONIC_USEC=".Length..]);
        Assert.InRange(usec, Microseconds(before) - 1000, Microseconds(after) + 1000);

        var readyAgain = await notify.NextAsync(mica, TimeSpan.FromSeconds(30));
        Assert.Equal("READY=1", readyAgain);
        // Sent once the replacement is complete: both new workers were ready before it.
        var replaced = await mica.WaitForReadyWorkersAsync(2, TimeSpan.FromSeconds(5), after: mark);
        Assert.Empty(replaced.Select(w => w.Pid).Intersect(workers.Select(w => w.Pid)));

        mica.Signal(Libc.SIGTERM);
        Assert.Equal("STOPPING=1", await notify.NextAsync(mica, TimeSpan.FromSeconds(10)));
        Assert.Equal(0, await mica.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        Assert.Empty(notify.Rest());
        Assert.Empty(Master.LinesWith(mica, "sd_notify"));
        await mica.AssertNoOrphansAsync();
    }

    private static long Microseconds(long stopwatchTimestamp) => (long)(stopwatchTimestamp * (1_000_000.0 / Stopwatch.Frequency));

    [Fact]
    public async Task Socket_activation_serves_the_socket_passed_as_fd_3()
    {
        var helper = Path.Combine(MicaProcess.AppsDir, "socket_activation.py");
        await using var mica = await MicaProcess.LaunchViaAsync([MicaProcess.Python, helper, MicaProcess.MicaBinaryPlaceholder],
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--workers", "2", Master.PidApp], raw: true);
        var announced = await mica.WaitForStdoutAsync("ACTIVATION PORT ");
        var port = int.Parse(ActivationPort().Match(announced.Text).Groups[1].Value);
        await mica.WaitForReadyWorkersAsync(2);

        Assert.Equal(port, mica.Port);
        Assert.DoesNotContain(mica.StderrLines, l => l.Contains("[ERROR]", StringComparison.Ordinal) || l.Contains("cannot listen", StringComparison.OrdinalIgnoreCase));
        Assert.Equal(2, (await mica.WaitForChildCountAsync(2)).Count);

        await using (var load = LoadGenerator.Start(mica, concurrency: 4, keepAlive: false))
        {
            await load.WaitForMoreSuccessesAsync(100);
            await load.StopAsync();
            Assert.True(load.Failed == 0, load.Summary());
            Assert.True(load.Bodies.Keys.All(pid => mica.SpawnedWorkers.Any(w => w.Pid.ToString() == pid)), load.Summary());
        }
        // The sockets were systemd's gift to the master: its workers must not see LISTEN_* as theirs.
        Assert.Equal("<unset>", await Master.GetOnNewConnectionAsync(mica, "/env?name=LISTEN_FDS"));
        Assert.Equal("<unset>", await Master.GetOnNewConnectionAsync(mica, "/env?name=LISTEN_PID"));

        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Socket_activation_of_a_unix_socket_serves_it_as_one_and_leaves_its_file_to_systemd()
    {
        using var dir = new TempDirectory();
        var path = Path.Combine(dir.Path, "mica.sock");
        var helper = Path.Combine(MicaProcess.AppsDir, "socket_activation.py");
        await using var mica = await MicaProcess.LaunchViaAsync([MicaProcess.Python, helper, MicaProcess.MicaBinaryPlaceholder],
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "scope_echo:app"],
            new Dictionary<string, string?> { ["SOCKET_ACTIVATION_PASS"] = "unix:" + path }, raw: true);
        await mica.WaitForStderrAsync(") ready", MicaProcess.ReadyTimeout);
        Assert.Contains(mica.ServerStderrLines, l => l.EndsWith($"Listening at: unix:{path}", StringComparison.Ordinal));

        var result = await Curl.RunAsync("--unix-socket", path, "http://localhost/x");
        Assert.True(result.Status == 200, result.ToString());
        Assert.Equal($"[\"{path}\",null]", result.Json.GetProperty("scope").GetProperty("server").GetRawText().Replace(" ", ""));

        await Master.StopAndCheckAsync(mica);
        Assert.True(File.Exists(path), "the socket file systemd made was removed");
    }

    [Theory]
    [InlineData("file", "which is not a listening socket")]
    [InlineData("unlistened", "is not listening")]
    public async Task Socket_activation_with_a_bad_fd_3_is_one_line_and_exit_1(string passing, string reason)
    {
        var helper = Path.Combine(MicaProcess.AppsDir, "socket_activation.py");
        await using var mica = await MicaProcess.LaunchViaAsync([MicaProcess.Python, helper, MicaProcess.MicaBinaryPlaceholder],
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, Master.PidApp],
            new Dictionary<string, string?> { ["SOCKET_ACTIVATION_PASS"] = passing }, raw: true);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exitCode == 1, $"exit code {exitCode}\n{mica.Dump()}");
        var line = Assert.Single(mica.ServerStderrLines);
        Assert.Contains("[ERROR]", line);
        Assert.Contains(reason, line);
        Assert.Empty(mica.SpawnedWorkers);
    }

    [GeneratedRegex(@"ACTIVATION PORT (\d+)")]
    private static partial Regex ActivationPort();
}
