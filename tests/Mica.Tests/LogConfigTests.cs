using Mica.Server;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>What Mica's own lines take from a <c>--log-config</c> dictConfig.</summary>
public sealed class LogConfigParsingTests
{
    [Fact]
    public void The_mica_loggers_first_handler_gives_format_date_format_level_and_file()
    {
        var config = LogConfig.Parse("""
            {"version": 1,
             "formatters": {"f": {"format": "%(levelname)s %(message)s", "datefmt": "%H:%M"}},
             "handlers": {"h": {"class": "logging.FileHandler", "filename": "/tmp/x.log", "formatter": "f"}},
             "loggers": {"mica": {"handlers": ["h"], "level": "WARNING"}}}
            """);
        Assert.Equal(new LogConfig(LogLevel.Warning, "%(levelname)s %(message)s", "%H:%M", LogOutput.File, "/tmp/x.log"), config);
    }

    [Fact]
    public void Without_a_mica_logger_the_root_logger_counts_and_Granians_fmt_key_works()
    {
        var config = LogConfig.Parse("""
            {"version": 1,
             "formatters": {"g": {"()": "logging.Formatter", "fmt": "[%(levelname)s] %(message)s"}},
             "handlers": {"out": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "g"}},
             "root": {"handlers": ["out"], "level": 40}}
            """);
        Assert.Equal((LogLevel.Error, "[%(levelname)s] %(message)s", LogOutput.Stdout), (config.Level, config.Format, config.Output));
    }

    [Fact]
    public void No_handler_keeps_Micas_format_and_takes_only_the_level()
    {
        var config = LogConfig.Parse("""{"version": 1, "loggers": {"mica": {"level": "DEBUG"}}}""");
        Assert.Equal(LogConfig.Default with { Level = LogLevel.Debug }, config);
    }

    [Fact]
    public void The_access_log_follows_mica_access_or_else_Granians_granian_access()
    {
        var granian = LogConfig.ParseAccess("""
            {"version": 1,
             "formatters": {"a": {"format": "%(name)s %(message)s"}},
             "handlers": {"af": {"class": "logging.FileHandler", "filename": "/tmp/access.log", "formatter": "a"}},
             "loggers": {"granian.access": {"handlers": ["af"], "level": "INFO"}}}
            """);
        Assert.Equal(new LogConfig(LogLevel.Info, "%(name)s %(message)s", "%Y-%m-%d %H:%M:%S,%f", LogOutput.File, "/tmp/access.log"), granian);
        var both = LogConfig.ParseAccess("""{"loggers": {"granian.access": {"level": "INFO"}, "mica.access": {"level": "ERROR"}}}""");
        Assert.Equal(LogLevel.Error, both.Level);
    }

    [Fact]
    public void A_config_that_does_not_name_the_access_logger_leaves_the_access_log_on_stdout()
    {
        var config = LogConfig.ParseAccess("""
            {"version": 1,
             "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
             "loggers": {"mica": {"handlers": ["h"], "level": "ERROR"}},
             "root": {"handlers": ["h"], "level": "ERROR"}}
            """);
        Assert.Equal(LogConfig.AccessDefault, config);
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("[1, 2]", "must be an object")]
    [InlineData("""{"loggers": {"mica": {"handlers": ["missing"]}}}""", "handler 'missing' is not defined")]
    [InlineData("""{"handlers": {"h": {"formatter": "nope"}}, "loggers": {"mica": {"handlers": ["h"]}}}""", "formatter 'nope' is not defined")]
    [InlineData("""{"formatters": {"f": {"format": "{message}", "style": "{"}}, "handlers": {"h": {"formatter": "f"}}, "loggers": {"mica": {"handlers": ["h"]}}}""", "uses style '{'")]
    [InlineData("""{"loggers": {"mica": {"level": "LOUD"}}}""", "unknown log level 'LOUD'")]
    public void Bad_configs_are_refused_with_the_reason(string json, string reason)
    {
        var error = Assert.Throws<FormatException>(() => LogConfig.Parse(json));
        Assert.Contains(reason, error.Message);
    }

    [Fact]
    public void Dates_follow_Pythons_strftime()
    {
        var time = new DateTimeOffset(2026, 3, 4, 15, 6, 7, 89, TimeSpan.FromHours(-5));
        Assert.Equal("2026-03-04 15:06:07 -0500", Strftime.Format(time, "%Y-%m-%d %H:%M:%S %z"));
        Assert.Equal("26/03/04 03PM Wed March 063 089000 100% %Q", Strftime.Format(time, "%y/%m/%d %I%p %a %B %j %f 100%% %Q"));
    }
}

/// <summary><c>--log-config</c> end to end: master, worker and app lines follow one dictConfig.</summary>
public sealed class LogConfigServerTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_file_handler_gets_the_masters_the_workers_and_the_apps_lines_in_its_format()
    {
        var logFile = _dir.File("all.log");
        var config = _dir.File("log.json");
        await File.WriteAllTextAsync(config, $$$"""
            {"version": 1,
             "formatters": {"plain": {"format": "%(levelname)-8s %(name)s pid=%(process)d | %(message)s"}},
             "handlers": {"file": {"class": "logging.FileHandler", "filename": "{{{logFile}}}", "formatter": "plain"}},
             "loggers": {"mica": {"handlers": ["file"], "level": "INFO", "propagate": false}},
             "root": {"handlers": ["file"], "level": "INFO"}}
            """);
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--log-config", config, "log_app:app"], raw: true);
        var port = await WaitForPortAsync(logFile);
        using (var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) })
        {
            Assert.Equal("ok", await client.GetStringAsync("/hello"));
            using var failed = await client.GetAsync("/boom");
            Assert.Equal(500, (int)failed.StatusCode);
        }
        Assert.Equal(0, await mica.StopAsync());

        var lines = await File.ReadAllLinesAsync(logFile);
        var text = string.Join('\n', lines);
        Assert.Contains(lines, l => l.StartsWith($"INFO     mica pid={mica.Pid} | Starting Mica", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"INFO     mica pid={mica.Pid} | Shutdown complete", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("INFO     mica pid=", StringComparison.Ordinal) && l.Contains("| Python 3", StringComparison.Ordinal) && !l.Contains($"pid={mica.Pid} ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("WARNING  myapp pid=", StringComparison.Ordinal) && l.EndsWith("| app saw /hello", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("ERROR    mica pid=", StringComparison.Ordinal) && l.EndsWith("| Exception in ASGI application", StringComparison.Ordinal));
        Assert.Contains("RuntimeError: boom for the log", text);
        // Every line written whole: each starts with a level name or belongs to the traceback.
        Assert.All(lines, l => Assert.Matches(@"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S+ pid=\d+ \| |^(Traceback|  |RuntimeError)", l));
        Assert.DoesNotContain(mica.ServerStderrLines, l => l.Contains("[INFO]", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Every_line_names_its_process_master_or_worker_id_and_the_apps_lines_too()
    {
        var config = _dir.File("named.json");
        await File.WriteAllTextAsync(config, """
            {"version": 1,
             "formatters": {"named": {"format": "APP %(processName)s %(name)s %(message)s"}},
             "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "named"}},
             "loggers": {"myapp": {"handlers": ["err"], "level": "INFO", "propagate": false}}}
            """);
        await using var mica = await MicaProcess.StartAsync("log_app:app", ["--workers", "2", "--log-config", config]);
        var workers = await mica.WaitForReadyWorkersAsync(2);
        using (var client = mica.CreateClient())
        {
            Assert.Equal("ok", await client.GetStringAsync("/hello"));
            using var failed = await client.GetAsync("/boom");
            Assert.Equal(500, (int)failed.StatusCode);
        }
        var appLine = (await mica.WaitForStderrAsync("APP worker-")).Text;
        Assert.Matches(@"^APP worker-[12] myapp app saw /hello$", appLine);
        // The traceback is logged by the Python side's mica logger: it names the worker as the C# side does.
        var error = (await mica.WaitForStderrAsync("Exception in ASGI application")).Text;
        Assert.Contains(workers, w => error.Contains($"] [worker-{w.Id}:{w.Pid}] [ERROR] Exception in ASGI application", StringComparison.Ordinal));

        var lines = mica.ServerStderrLines;
        Assert.Contains(lines, l => l.Contains($"] [master:{mica.Pid}] [INFO] Starting Mica", StringComparison.Ordinal));
        foreach (var (id, pid) in workers)
            Assert.Contains(lines, l => l.Contains($"] [worker-{id}:{pid}] [INFO] Python 3", StringComparison.Ordinal));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task The_access_log_goes_where_the_config_sends_granian_access_in_its_format()
    {
        var accessFile = _dir.File("access.log");
        var config = _dir.File("access.json");
        await File.WriteAllTextAsync(config, $$$$"""
            {"version": 1,
             "formatters": {"access": {"format": "%(levelname)s %(name)s %(processName)s | %(message)s"}},
             "handlers": {"file": {"class": "logging.FileHandler", "filename": "{{{{accessFile}}}}", "formatter": "access"}},
             "loggers": {"granian.access": {"handlers": ["file"], "level": "INFO", "propagate": false}}}
            """);
        await using var mica = await MicaProcess.StartAsync("log_app:app", ["--access-log", "--log-config", config]);
        using (var client = mica.CreateClient())
            Assert.Equal("ok", await client.GetStringAsync("/hello?x=1"));
        Assert.Equal(0, await mica.StopAsync());   // the worker writes what is queued before it exits

        var line = Assert.Single(await File.ReadAllLinesAsync(accessFile));
        Assert.Matches(@"^INFO mica\.access worker-1 \| \[[^]]+\] 127\.0\.0\.1 - ""GET /hello HTTP/1\.1"" 200 \d+\.\d{3}$", line);
        Assert.DoesNotContain(mica.Lines, l => l.Text.Contains("\"GET /hello", StringComparison.Ordinal) && !l.Text.StartsWith("INFO mica.access", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_access_logger_above_INFO_silences_the_access_log()
    {
        var config = _dir.File("quiet-access.json");
        await File.WriteAllTextAsync(config, """{"version": 1, "loggers": {"mica.access": {"level": "WARNING"}}}""");
        await using var mica = await MicaProcess.StartAsync("log_app:app", ["--access-log", "--log-config", config]);
        using (var client = mica.CreateClient())
            Assert.Equal("ok", await client.GetStringAsync("/hello"));
        Assert.Equal(0, await mica.StopAsync());
        Assert.Contains(mica.Lines, l => l.Text.Contains("app saw /hello", StringComparison.Ordinal));
        Assert.DoesNotContain(mica.Lines, l => l.Text.Contains("\"GET /hello", StringComparison.Ordinal));
    }

    /// <summary>logrotate's way, as with gunicorn: move the files away, SIGUSR1 the master, and new files start.</summary>
    [Fact]
    public async Task Sigusr1_reopens_the_log_files_that_logrotate_moved_away_and_sigusr2_changes_nothing()
    {
        var serverLog = _dir.File("server.log");
        var accessLog = _dir.File("access.log");
        var config = _dir.File("rotate.json");
        await File.WriteAllTextAsync(config, $$$$"""
            {"version": 1,
             "handlers": {"server": {"class": "logging.FileHandler", "filename": "{{{{serverLog}}}}"},
                          "access": {"class": "logging.FileHandler", "filename": "{{{{accessLog}}}}"}},
             "loggers": {"mica": {"handlers": ["server"], "level": "INFO"}, "mica.access": {"handlers": ["access"], "level": "INFO"}}}
            """);
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--workers", "2",
             "--log-config", config, "--access-log", "--access-log-fmt", "ACCESS %(path)s", "log_app:app"], raw: true);
        var port = await WaitForPortAsync(serverLog);
        await Master.WaitUntilAsync(() => File.ReadAllText(serverLog).Split("ready").Length == 3, "both workers ready");
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
        Assert.Equal("ok", await client.GetStringAsync("/before"));
        await Master.WaitUntilAsync(() => File.ReadAllText(accessLog).Contains("ACCESS /before"), "the access line before the rotation");

        File.Move(serverLog, serverLog + ".1");
        File.Move(accessLog, accessLog + ".1");
        mica.Signal(Libc.SIGUSR1);
        await Master.WaitUntilAsync(() => File.Exists(serverLog) && File.ReadAllText(serverLog).Contains("Received SIGUSR1: reopened log files"), "the master's line in the new file");
        // Every worker reopens: new connections, spread over both, all land in the new access log.
        for (var i = 0; i < 20; i++)
        {
            using var fresh = new HttpClient { BaseAddress = client.BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
            fresh.DefaultRequestHeaders.ConnectionClose = true;
            Assert.Equal("ok", await fresh.GetStringAsync($"/after{i}"));
        }
        await Master.WaitUntilAsync(() => File.Exists(accessLog) && Enumerable.Range(0, 20).All(i => File.ReadAllText(accessLog).Contains($"ACCESS /after{i}\n")),
            "every later access line in the new file");
        Assert.DoesNotContain("/after", File.ReadAllText(accessLog + ".1"));

        mica.Signal(Libc.SIGUSR2);
        await Master.WaitUntilAsync(() => File.ReadAllText(serverLog).Contains("Received SIGUSR2: ignored"), "the SIGUSR2 line");
        Assert.Equal("ok", await client.GetStringAsync("/still-serving"));
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task The_configs_level_for_mica_filters_the_masters_lines()
    {
        var config = _dir.File("quiet.json");
        await File.WriteAllTextAsync(config, """{"version": 1, "loggers": {"mica": {"level": "WARNING"}}}""");
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--log-config", config, "--blocking-threads", "2", "log_app:app"], raw: true);
        // An ASGI app with --blocking-threads 2 makes the worker warn; the INFO lines around it must not appear.
        await mica.WaitForStderrAsync("[WARNING]", TimeSpan.FromSeconds(60));
        Assert.DoesNotContain(mica.ServerStderrLines, l => l.Contains("[INFO]", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("""{"formatters": {"f": {"format": "%(nosuchfield)s"}}, "handlers": {"h": {"formatter": "f"}}, "loggers": {"mica": {"handlers": ["h"]}}}""", "unknown atom 'nosuchfield'")]
    public async Task A_bad_config_is_one_line_on_stderr_and_exit_2(string json, string reason)
    {
        var config = _dir.File("bad.json");
        await File.WriteAllTextAsync(config, json);
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--log-config", config, "log_app:app"], raw: true);
        Assert.Equal(2, await mica.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Single(mica.ServerStderrLines);
        Assert.Contains(reason, mica.ServerStderrLines[0]);
    }

    [Fact]
    public async Task A_config_Python_cannot_apply_stops_the_start_with_exit_1_naming_it()
    {
        var config = _dir.File("unapplicable.json");
        await File.WriteAllTextAsync(config, """{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}""");
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--log-config", config, "log_app:app"], raw: true);
        Assert.Equal(1, await mica.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(mica.ServerStderrLines, l => l.Contains("--log-config could not be applied", StringComparison.Ordinal));
    }

    /// <summary>The master's "Listening at" line, read from the log file (stderr has nothing).</summary>
    private static async Task<int> WaitForPortAsync(string logFile)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            if (File.Exists(logFile))
            {
                var text = await File.ReadAllTextAsync(logFile, timeout.Token);
                var listening = System.Text.RegularExpressions.Regex.Match(text, @"Listening at: http://127\.0\.0\.1:(\d+)");
                if (listening.Success && text.Contains("ready", StringComparison.Ordinal)) return int.Parse(listening.Groups[1].Value);
            }
            await Task.Delay(50, timeout.Token);
        }
    }
}
