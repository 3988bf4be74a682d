using System.Net;
using System.Net.Sockets;
using Mica.Metrics;
using Mica.Server.Metrics;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// --metrics end to end: the master's Prometheus endpoint, read with Prometheus' own parser. Workers
/// report every --metrics-scrape-interval (1 s here), so each check scrapes until the value arrives.
/// </summary>
public sealed class MetricsServerTests
{
    private static readonly string[] Metrics = ["--metrics", "--metrics-port", "0", "--metrics-scrape-interval", "1"];

    /// <summary>Granian's names and types, as Mica exposes them (worker_lifetime is a gauge: it restarts with the process).</summary>
    private static readonly (string Name, string Type)[] GranianFamilies =
    [
        ("granian_workers_spawns", "counter"), ("granian_workers_respawns_for_err", "counter"),
        ("granian_workers_respawns_for_lifetime", "counter"), ("granian_workers_respawns_for_rss", "counter"),
        ("granian_worker_lifetime", "gauge"), ("granian_connections_active", "gauge"), ("granian_connections_handled", "counter"),
        ("granian_connections_err", "counter"), ("granian_requests_handled", "counter"), ("granian_static_requests_handled", "counter"),
        ("granian_static_requests_err", "counter"), ("granian_blocking_threads", "gauge"), ("granian_blocking_queue", "gauge"),
        ("granian_blocking_idle_cumulative", "counter"), ("granian_blocking_busy_cumulative", "counter"), ("granian_py_wait_cumulative", "counter"),
    ];

    private static async Task SendAsync(HttpClient client, string path, int times, HttpStatusCode expected)
    {
        for (var i = 0; i < times; i++)
        {
            using var response = await client.GetAsync(path);
            Assert.Equal(expected, response.StatusCode);
        }
    }

    private static double Class(Scrape s, int worker, string cls) => s.Worker("mica_requests_total", worker, ("class", cls)) ?? -1;

    [Fact]
    public async Task Requests_are_counted_exactly_by_status_class_and_in_the_duration_histogram()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", Metrics);
        var url = await Scrape.UrlAsync(mica);
        Assert.Equal("/metrics", url.AbsolutePath);
        var first = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) is not null, "worker 1 reports");
        foreach (var (name, type) in GranianFamilies)
        {
            Assert.Equal(type, first.Family(name).Type);
            Assert.NotEmpty(first.Family(name).Help);
        }
        Assert.Equal("histogram", first.Family("mica_request_duration_seconds").Type);
        Assert.Equal(1, first.Value("granian_workers_spawns"));
        Assert.Equal(0, first.Worker("granian_requests_handled", 1));
        // ASGI: one thread runs the app, and there is no pool whose time could be measured.
        Assert.Equal(1, first.Worker("granian_blocking_threads", 1));
        Assert.Empty(first.Family("granian_blocking_busy_cumulative").Samples);

        using var client = mica.CreateClient();
        var expected = (total: 0, ok: 0, notFound: 0, failed: 0);
        for (var round = 1; round <= 2; round++)
        {
            await SendAsync(client, "/status?code=200", 5, HttpStatusCode.OK);
            await SendAsync(client, "/status?code=404", 3, HttpStatusCode.NotFound);
            await SendAsync(client, "/status?code=503", 1, HttpStatusCode.ServiceUnavailable);
            await SendAsync(client, "/raise-before-start", 1, HttpStatusCode.InternalServerError);
            expected = (expected.total + 10, expected.ok + 5, expected.notFound + 3, expected.failed + 2);
            var e = expected;
            var scrape = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) >= e.total && Class(s, 1, "5xx") >= e.failed,
                $"round {round}: {e.total} requests counted");
            Assert.Equal(e.total, scrape.Worker("granian_requests_handled", 1));
            Assert.Equal(e.ok, Class(scrape, 1, "2xx"));
            Assert.Equal(e.notFound, Class(scrape, 1, "4xx"));
            Assert.Equal(e.failed, Class(scrape, 1, "5xx"));
            Assert.Equal(0, Class(scrape, 1, "1xx"));
            Assert.Equal(0, Class(scrape, 1, "3xx"));
            Assert.Equal(0, scrape.Worker("mica_requests_in_flight", 1));
            Assert.Equal(e.total, scrape.Worker("mica_request_duration_seconds_count", 1));
            Assert.Equal(e.total, scrape.Worker("mica_request_duration_seconds_bucket", 1, ("le", "+Inf")));
            var buckets = scrape.Family("mica_request_duration_seconds").Samples
                .Where(x => x.Name.EndsWith("_bucket", StringComparison.Ordinal) && x.Labels["worker"] == "1").Select(x => x.Value).ToList();
            Assert.Equal(RequestDurations.Bounds.Length + 1, buckets.Count);
            Assert.Equal(buckets.Order(), buckets);   // cumulative
            var sum = scrape.Worker("mica_request_duration_seconds_sum", 1)!.Value;
            Assert.InRange(sum, 1e-6, 10);
            Assert.True(scrape.Worker("granian_connections_handled", 1) >= 1, scrape.Text);
            Assert.Equal(0, scrape.Worker("granian_connections_err", 1));
            Assert.Equal(0, scrape.Worker("granian_static_requests_handled", 1));
        }
        Assert.True((await Scrape.GetAsync(url)).Worker("granian_connections_active", 1) >= 1, "the client's keep-alive connection is open");
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Requests_in_flight_and_open_connections_are_gauges()
    {
        await using var mica = await MicaProcess.StartAsync("raw_app:app", Metrics);
        var url = await Scrape.UrlAsync(mica);
        using var client = mica.CreateClient();
        var mark = mica.Mark();
        var slow = Task.WhenAll(Enumerable.Range(0, 3).Select(i => client.GetAsync($"/sleep?s=4&key=inflight{i}")));
        for (var i = 0; i < 3; i++) await mica.WaitForStdoutAsync($"SLEEP START inflight{i}", after: mark);
        var scrape = await Scrape.WaitAsync(url, s => s.Worker("mica_requests_in_flight", 1) == 3, "3 requests in flight", TimeSpan.FromSeconds(3));
        Assert.Equal(3, scrape.Worker("granian_connections_active", 1));
        Assert.Equal(3, scrape.Worker("granian_requests_handled", 1));
        Assert.Equal(0, scrape.Worker("mica_request_duration_seconds_count", 1));
        foreach (var response in await slow) Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        scrape = await Scrape.WaitAsync(url, s => s.Worker("mica_requests_in_flight", 1) == 0, "the 3 requests complete");
        Assert.Equal(3, Class(scrape, 1, "2xx"));
        Assert.Equal(3, scrape.Worker("mica_request_duration_seconds_bucket", 1, ("le", "+Inf")));
        Assert.Equal(0, scrape.Worker("mica_request_duration_seconds_bucket", 1, ("le", "2.5")));   // each took 4 s
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task A_websocket_is_a_1xx_request_left_out_of_the_duration_histogram()
    {
        await using var mica = await MicaProcess.StartAsync("ws_app:app", Metrics);
        var url = await Scrape.UrlAsync(mica);
        using (var ws = await Ws.ConnectAsync(mica, "/echo?key=metrics"))
        {
            Assert.Equal("hi", (await ws.EchoTextAsync("hi")).Text);
            var open = await Scrape.WaitAsync(url, s => s.Worker("mica_requests_in_flight", 1) == 1, "the websocket is a request in flight");
            Assert.Equal(1, open.Worker("granian_requests_handled", 1));
            await ws.CloseCleanlyAsync();
        }
        await Ws.WaitForAppDisconnectAsync(mica, "metrics");
        using var client = mica.CreateClient();
        await SendAsync(client, "/hello", 1, HttpStatusCode.OK);
        var scrape = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 2 && Class(s, 1, "2xx") == 1 && Class(s, 1, "1xx") == 1,
            "the websocket (101) and one HTTP request");
        Assert.Equal(0, scrape.Worker("mica_requests_in_flight", 1));
        Assert.Equal(1, scrape.Worker("mica_request_duration_seconds_count", 1));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Two_workers_appear_each_with_its_own_series_and_memory()
    {
        await using var mica = await Master.StartAsync(2, Metrics);
        var url = await Scrape.UrlAsync(mica);
        var scrape = await Scrape.WaitAsync(url, s => s.WorkerIds("granian_worker_lifetime").Count == 2, "both workers report");
        Assert.Equal([1, 2], scrape.WorkerIds("granian_requests_handled"));
        Assert.Equal([1, 2], scrape.WorkerIds("mica_worker_rss_bytes"));
        Assert.Equal(2, scrape.Value("granian_workers_spawns"));
        foreach (var id in new[] { 1, 2 })
        {
            Assert.InRange(scrape.Worker("mica_worker_rss_bytes", id)!.Value, 1 << 20, 4L << 30);
            Assert.InRange(scrape.Worker("granian_worker_lifetime", id)!.Value, 0, 120);
        }
        for (var i = 0; i < 20; i++) await Master.GetOnNewConnectionAsync(mica);
        scrape = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) + s.Worker("granian_requests_handled", 2) == 20,
            "20 requests over both workers");
        Assert.Equal(20, Class(scrape, 1, "2xx") + Class(scrape, 2, "2xx"));
        Assert.Equal(20, scrape.Worker("granian_connections_handled", 1) + scrape.Worker("granian_connections_handled", 2));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task A_killed_worker_counts_a_respawn_for_error_and_its_counts_never_go_backwards()
    {
        await using var mica = await Master.StartAsync(1, [.. Metrics, "--respawn-failed-workers", "--respawn-interval", "0.2"]);
        var url = await Scrape.UrlAsync(mica);
        for (var i = 0; i < 6; i++) await Master.GetOnNewConnectionAsync(mica);
        var before = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 6, "6 requests counted");
        Assert.Equal(0, before.Value("granian_workers_respawns_for_err"));

        var mark = mica.Mark();
        Assert.Equal(0, Libc.kill(mica.WorkerPid, Libc.SIGKILL));
        await mica.WaitForStderrAsync("died unexpectedly", after: mark);
        await mica.WaitForReadyWorkersAsync(1, after: mark);
        // The killed process's gauges went with it; they are back once the new one reports.
        var after = await Scrape.WaitAsync(url, s => s.Value("granian_workers_respawns_for_err") == 1 && s.Worker("granian_worker_lifetime", 1) is not null,
            "the respawned worker reports");
        Assert.Equal(1, after.Value("mica_worker_restarts_total", ("reason", "error")));
        Assert.Equal(2, after.Value("granian_workers_spawns"));
        Assert.Equal(6, after.Worker("granian_requests_handled", 1));
        Assert.Equal(6, Class(after, 1, "2xx"));
        Assert.Equal(6, after.Worker("mica_request_duration_seconds_count", 1));

        for (var i = 0; i < 4; i++) await Master.GetOnNewConnectionAsync(mica);
        var later = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 10, "the new worker's 4 requests add to the 6");
        Assert.Equal(10, Class(later, 1, "2xx"));
        Assert.Equal(10, later.Worker("granian_connections_handled", 1));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Sighup_counts_signal_restarts_and_the_old_workers_last_report_loses_nothing()
    {
        // The longest interval: the only reports are the one at ready and the one after draining.
        await using var mica = await Master.StartAsync(1, ["--metrics", "--metrics-port", "0", "--metrics-scrape-interval", "60"]);
        var url = await Scrape.UrlAsync(mica);
        await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 0, "worker 1 reports at ready");
        for (var i = 0; i < 7; i++) await Master.GetOnNewConnectionAsync(mica);
        var old = mica.WorkerPid;

        var mark = mica.Mark();
        mica.Signal(Libc.SIGHUP);
        await mica.WaitForStderrAsync($"worker-1 (pid {old}) stopped", TimeSpan.FromSeconds(30), mark);
        var scrape = await Scrape.WaitAsync(url, s => s.Value("mica_worker_restarts_total", ("reason", "signal")) == 1 && s.Worker("granian_requests_handled", 1) == 7,
            "the replaced worker's 7 requests and the restart");
        Assert.Equal(7, Class(scrape, 1, "2xx"));
        Assert.Equal(2, scrape.Value("granian_workers_spawns"));
        Assert.Equal(0, scrape.Value("granian_workers_respawns_for_err"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Reload_counts_the_reload_and_keeps_the_counts()
    {
        using var project = new ReloadProject(ReloadApps.Asgi("v1"));
        await using var mica = await project.StartAsync(1, options: Metrics);
        var url = await Scrape.UrlAsync(mica);
        for (var i = 0; i < 3; i++) Assert.Equal("v1", await ReloadProject.GetOkAsync(mica));
        await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 3, "3 requests counted");

        await ReloadProject.ReloadAsync(mica, () => project.Write("main.py", ReloadApps.Asgi("v2")));
        Assert.Equal("v2", await ReloadProject.GetOkAsync(mica));
        var scrape = await Scrape.WaitAsync(url, s => s.Value("mica_reloads_total") == 1 && s.Worker("granian_requests_handled", 1) == 4,
            "one reload, and the requests before and after it");
        Assert.Equal(1, scrape.Value("mica_worker_restarts_total", ("reason", "reload")));
        Assert.Equal(2, scrape.Value("granian_workers_spawns"));
        Assert.Equal(4, Class(scrape, 1, "2xx"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Wsgi_workers_report_their_thread_pool()
    {
        await using var mica = await MicaProcess.StartAsync("wsgi_app:app", ["--interface", "wsgi", .. Metrics]);
        var url = await Scrape.UrlAsync(mica);
        using var client = mica.CreateClient();
        await SendAsync(client, "/ok", 5, HttpStatusCode.OK);
        var scrape = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 5 && s.Worker("granian_blocking_busy_cumulative", 1) > 0,
            "5 WSGI requests and the pool's busy time");
        Assert.InRange(scrape.Worker("granian_blocking_threads", 1)!.Value, 1, 2);
        Assert.Equal(0, scrape.Worker("granian_blocking_queue", 1));
        Assert.True(scrape.Worker("granian_blocking_idle_cumulative", 1) >= 0, scrape.Text);
        Assert.True(scrape.Worker("granian_py_wait_cumulative", 1) >= 0, scrape.Text);
        Assert.Equal(5, Class(scrape, 1, "2xx"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Static_files_are_requests_and_a_missing_one_is_a_static_error()
    {
        using var dir = new TempDirectory();
        await File.WriteAllTextAsync(Path.Combine(dir.Path, "a.txt"), "static a\n");
        await using var mica = await MicaProcess.StartAsync("static_app:app", ["--static-path-mount", dir.Path, .. Metrics]);
        var url = await Scrape.UrlAsync(mica);
        using var client = mica.CreateClient();
        await SendAsync(client, "/static/a.txt", 2, HttpStatusCode.OK);
        await SendAsync(client, "/static/missing.txt", 1, HttpStatusCode.NotFound);
        await SendAsync(client, "/app", 1, HttpStatusCode.OK);
        var scrape = await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 4 && Class(s, 1, "2xx") == 3,
            "4 requests, 3 of them static");
        Assert.Equal(3, scrape.Worker("granian_static_requests_handled", 1));
        Assert.Equal(1, scrape.Worker("granian_static_requests_err", 1));
        Assert.Equal(1, Class(scrape, 1, "4xx"));
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task A_failed_TLS_handshake_is_a_connection_error()
    {
        var pki = await TestPki.GetAsync();
        await using var server = await ProtoServer.StartAsync("proto_asgi:app",
            ["--ssl-certificate", pki.ServerCert, "--ssl-keyfile", pki.ServerKey, .. Metrics]);
        var url = await Scrape.UrlAsync(server.Mica);
        using (var client = Clients.Http11(server.Base, pki))
        {
            using var response = await client.GetAsync("/x");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        await using (var plain = await RawConnection.ConnectAsync("127.0.0.1", server.Port))
        {
            await plain.SendAsync(RawConnection.Get("/not-tls"));
            Assert.True(await plain.WaitClosedAsync(TimeSpan.FromSeconds(10)), "the server kept a connection that is not TLS");
        }
        var scrape = await Scrape.WaitAsync(url, s => s.Worker("granian_connections_handled", 1) == 2 && s.Worker("granian_connections_active", 1) == 0,
            "two connections, both closed");
        Assert.Equal(1, scrape.Worker("granian_connections_err", 1));
        Assert.Equal(1, scrape.Worker("granian_requests_handled", 1));
        await Master.StopAndCheckAsync(server.Mica);
    }

    [Fact]
    public async Task The_endpoint_answers_any_path_keeps_the_connection_answers_HEAD_and_refuses_other_methods()
    {
        await using var mica = await MicaProcess.StartAsync("hello:app", Metrics);
        var url = await Scrape.UrlAsync(mica);
        await using var connection = await RawConnection.ConnectAsync(url.Host, url.Port);
        foreach (var target in new[] { "/metrics", "/", "/anything?x=1" })
        {
            await connection.SendAsync(RawConnection.Get(target));
            var response = await connection.ReadResponseAsync();
            Assert.Equal(200, response.Status);
            Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Header("Content-Type"));
            Assert.Contains("# TYPE granian_requests_handled counter", response.BodyText);
            await Scrape.ParseAsync(response.BodyText);
        }
        await connection.SendAsync("HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        var head = await connection.ReadHeadAsync();
        Assert.Equal(200, head.Status);
        Assert.True(int.Parse(head.Header("Content-Length")!) > 1000);
        await connection.SendAsync("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        var post = await connection.ReadResponseAsync("POST");
        Assert.Equal(405, post.Status);
        Assert.Equal("GET, HEAD", post.Header("Allow"));
        await connection.SendAsync("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, (await connection.ReadResponseAsync()).Status);
        Assert.True(await connection.WaitClosedAsync(TimeSpan.FromSeconds(5)), "Connection: close was not honoured");
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>The --metrics options at the command line: usage errors (exit 2) and an endpoint that cannot be bound (exit 1).</summary>
public sealed class MetricsOptionTests
{
    private static async Task<(int ExitCode, IReadOnlyList<string> Stderr)> RunAsync(string[] args, IDictionary<string, string?>? environment = null)
    {
        await using var mica = await MicaProcess.LaunchAsync(args, environment);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return (exitCode, mica.ServerStderrLines);
    }

    [Theory]
    [InlineData("--metrics-port", "70000")]
    [InlineData("--metrics-port", "-1")]
    [InlineData("--metrics-port", "http")]
    [InlineData("--metrics-scrape-interval", "0")]
    [InlineData("--metrics-scrape-interval", "61")]
    [InlineData("--metrics-scrape-interval", "often")]
    [InlineData("--metrics-address", "not an address")]
    [InlineData("--metrics-address", "")]
    public async Task A_bad_metrics_option_exits_2_with_one_line_naming_it(string option, string value)
    {
        var (exitCode, stderr) = await RunAsync(["--metrics", option, value, "hello:app"]);
        Assert.True(exitCode == 2, $"exit code {exitCode}\n{string.Join('\n', stderr)}");
        var line = Assert.Single(stderr);
        Assert.StartsWith("mica: error:", line);
        Assert.Contains(option, line);
    }

    [Fact]
    public async Task A_bad_MICA_METRICS_PORT_exits_2()
    {
        var (exitCode, stderr) = await RunAsync(["--metrics", "hello:app"], new Dictionary<string, string?> { ["MICA_METRICS_PORT"] = "99999" });
        Assert.Equal(2, exitCode);
        Assert.Contains("--metrics-port", Assert.Single(stderr));
    }

    [Fact]
    public async Task A_metrics_port_in_use_exits_1_with_one_line_before_any_worker_starts()
    {
        using var blocker = new TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        var port = ((IPEndPoint)blocker.LocalEndpoint).Port;
        var (exitCode, stderr) = await RunAsync(["--metrics", "--metrics-port", port.ToString(), "hello:app"]);
        Assert.True(exitCode == 1, $"exit code {exitCode}\n{string.Join('\n', stderr)}");
        var error = Assert.Single(stderr, l => l.Contains("[ERROR]", StringComparison.Ordinal));
        Assert.Contains($"cannot serve metrics on 127.0.0.1:{port}", error);
        Assert.DoesNotContain(stderr, l => l.Contains("Spawned worker", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Metrics_options_from_GRANIAN_variables_start_the_exporter()
    {
        await using var mica = await MicaProcess.LaunchAsync(["hello:app"], new Dictionary<string, string?>
        {
            ["GRANIAN_METRICS_ENABLED"] = "true", ["GRANIAN_METRICS_PORT"] = "0", ["GRANIAN_METRICS_ADDRESS"] = "127.0.0.1",
        });
        await mica.WaitReadyAsync();
        var url = await Scrape.UrlAsync(mica);
        Assert.Equal("127.0.0.1", url.Host);
        Assert.NotEqual(mica.Port, url.Port);
        await Scrape.WaitAsync(url, s => s.Worker("granian_requests_handled", 1) == 0, "worker 1 reports");
        await Master.StopAndCheckAsync(mica);
    }

    [Fact]
    public async Task Without_metrics_nothing_listens_and_nothing_is_logged()
    {
        await using var mica = await MicaProcess.StartAsync("hello:app", ["--metrics-port", "0"]);
        Assert.DoesNotContain(mica.StderrLines, l => l.Contains("Metrics at", StringComparison.Ordinal));
        await Master.StopAndCheckAsync(mica);
    }
}

/// <summary>The exposition text (<see cref="PrometheusText"/>), the master's totals (<see cref="MetricsBook"/>), the exporter's request parsing.</summary>
public sealed class MetricsUnitTests
{
    [Fact]
    public void Families_have_HELP_and_TYPE_lines_and_samples_their_labels()
    {
        var text = new PrometheusText()
            .Family("a_total", "counter", "Things done").Sample("a_total", 3, ("worker", "1"), ("class", "2xx"))
            .Family("b", "gauge", "Now").Sample("b", 1.5).ToString();
        Assert.Equal("# HELP a_total Things done\n# TYPE a_total counter\na_total{worker=\"1\",class=\"2xx\"} 3\n# HELP b Now\n# TYPE b gauge\nb 1.5\n", text);
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("back\\slash", "back\\\\slash")]
    [InlineData("a \"quote\"", "a \\\"quote\\\"")]
    [InlineData("two\nlines", "two\\nlines")]
    [InlineData("\\\"\n", "\\\\\\\"\\n")]
    [InlineData("ünï €", "ünï €")]
    public void Label_values_escape_backslash_quote_and_newline(string value, string escaped) =>
        Assert.Equal(escaped, PrometheusText.EscapeLabel(value));

    [Fact]
    public void Help_escapes_backslash_and_newline_but_not_quotes() =>
        Assert.Equal("# HELP x a \\\\ \"b\"\\nc\n# TYPE x untyped\n", new PrometheusText().Family("x", "untyped", "a \\ \"b\"\nc").ToString());

    [Theory]
    [InlineData(0.0, "0")]
    [InlineData(0.1, "0.1")]
    [InlineData(2.5, "2.5")]
    [InlineData(1e-7, "1E-07")]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    [InlineData(double.NaN, "NaN")]
    public void Values_are_spelled_as_Prometheus_reads_them(double value, string text) => Assert.Equal(text, PrometheusText.Format(value));

    [Fact]
    public void Histogram_buckets_are_cumulative_and_end_with_Inf_sum_and_count()
    {
        var text = new PrometheusText().Family("d", "histogram", "Durations")
            .Histogram("d", [("worker", "1")], [0.1, 1], [2, 0, 3], 7.25).ToString();
        Assert.Equal(
            "# HELP d Durations\n# TYPE d histogram\n" +
            "d_bucket{worker=\"1\",le=\"0.1\"} 2\nd_bucket{worker=\"1\",le=\"1\"} 2\nd_bucket{worker=\"1\",le=\"+Inf\"} 5\n" +
            "d_sum{worker=\"1\"} 7.25\nd_count{worker=\"1\"} 5\n", text);
    }

    [Fact]
    public async Task Prometheus_parser_reads_back_escaped_labels_and_a_histogram()
    {
        const string nasty = "a\\b \"c\"\nd ü";
        var text = new PrometheusText()
            .Family("m_total", "counter", "Help with \\ and\nnewline").Sample("m_total", 42, ("path", nasty))
            .Family("h", "histogram", "H").Histogram("h", [], [0.5], [1, 1], 0.75).ToString();
        var scrape = await Scrape.ParseAsync(text);
        Assert.Equal(42, scrape.Value("m_total", ("path", nasty)));
        Assert.Equal("Help with \\ and\nnewline", scrape.Family("m_total").Help);
        Assert.Equal(2, scrape.Value("h_count"));
        Assert.Equal(1, scrape.Value("h_bucket", ("le", "0.5")));
        Assert.Equal(0.75, scrape.Value("h_sum"));
    }

    [Fact]
    public void Histogram_refuses_counts_that_do_not_match_the_bounds() =>
        Assert.Throws<ArgumentException>(() => new PrometheusText().Histogram("h", [], [1], [1], 0));

    private static MetricsReport Report(long requests, long ok, long active = 0) => new()
    {
        RequestsHandled = requests, ConnectionsActive = active, ConnectionsHandled = requests, Statuses = [0, ok, 0, 0, 0],
        DurationBuckets = [.. Enumerable.Repeat(0L, RequestDurations.Bounds.Length), ok], DurationSum = ok,
    };

    [Fact]
    public void Counters_of_an_exited_worker_stay_and_the_next_process_adds_to_them()
    {
        var book = new MetricsBook();
        object first = new(), second = new();
        book.Spawned(first, 1);
        book.Reported(first, Report(10, 9, active: 2), rssBytes: 1000);
        var view = book.View().Workers.Single();
        Assert.Equal((10L, 2L, true, 1000L), (view.Totals.RequestsHandled, view.Totals.ConnectionsActive, view.Live, view.RssBytes));

        book.Exited(first);
        view = book.View().Workers.Single();
        Assert.Equal(10, view.Totals.RequestsHandled);
        Assert.Equal(9, view.Totals.Statuses[1]);
        Assert.False(view.Live);
        Assert.Equal(0, view.Totals.ConnectionsActive);
        Assert.Null(view.RssBytes);

        book.Spawned(second, 1);
        book.Restarted(RestartReason.Error);
        Assert.Equal(10, book.View().Workers.Single().Totals.RequestsHandled);   // nothing reported yet
        book.Reported(second, Report(3, 3, active: 1), rssBytes: 500);
        var all = book.View();
        view = all.Workers.Single();
        Assert.Equal((13L, 12L, 1L, 12L), (view.Totals.RequestsHandled, view.Totals.Statuses[1], view.Totals.ConnectionsActive, view.Totals.DurationBuckets[^1]));
        Assert.Equal(2, all.Spawns);
        Assert.Equal(1, all.Restarts[(int)RestartReason.Error]);
    }

    [Fact]
    public void During_a_replacement_an_id_sums_its_old_and_new_process()
    {
        var book = new MetricsBook();
        object old = new(), replacement = new(), other = new();
        book.Spawned(old, 1);
        book.Spawned(other, 2);
        book.Reported(old, Report(5, 5, active: 1), 100);
        book.Reported(other, Report(1, 1), 100);
        book.Spawned(replacement, 1);
        book.Restarted(RestartReason.Signal);
        book.Reported(replacement, Report(2, 2, active: 1), 200);
        var view = book.View();
        Assert.Equal([1, 2], view.Workers.Select(w => w.Id));
        Assert.Equal((7L, 2L, 300L), (view.Workers[0].Totals.RequestsHandled, view.Workers[0].Totals.ConnectionsActive, view.Workers[0].RssBytes!.Value));
        book.Reported(old, Report(6, 6), 100);   // its last report, after draining
        book.Exited(old);
        Assert.Equal(8, book.View().Workers[0].Totals.RequestsHandled);
        var text = book.View().Render();
        Assert.Contains("granian_requests_handled{worker=\"1\"} 8\n", text);
        Assert.Contains("mica_worker_restarts_total{reason=\"signal\"} 1\n", text);
        Assert.Contains("granian_workers_spawns 3\n", text);
    }

    [Fact]
    public async Task The_rendered_view_is_valid_for_Prometheus_even_before_any_report()
    {
        var empty = await Scrape.ParseAsync(MetricsView.Empty.Render());
        Assert.Equal(0, empty.Value("granian_workers_spawns"));
        Assert.Empty(empty.Family("granian_requests_handled").Samples);
        var book = new MetricsBook();
        book.Spawned(new object(), 1);
        book.Reloaded();
        var scrape = await Scrape.ParseAsync(book.View().Render());
        Assert.Equal(1, scrape.Value("mica_reloads_total"));
        Assert.Equal(1, scrape.Value("granian_workers_spawns"));
    }

    [Theory]
    [InlineData("GET /metrics HTTP/1.1\r\nHost: x", "GET", false)]
    [InlineData("GET /metrics HTTP/1.1\r\nConnection: close", "GET", true)]
    [InlineData("GET /metrics HTTP/1.0", "GET", true)]
    [InlineData("GET /metrics HTTP/1.0\r\nConnection: keep-alive", "GET", false)]
    [InlineData("HEAD / HTTP/1.1\r\nconnection: Keep-Alive, Upgrade", "HEAD", false)]
    [InlineData("POST / HTTP/1.1\r\nContent-Length: 5", "POST", true)]
    [InlineData("POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked", "POST", true)]
    public void Request_heads_give_the_method_and_whether_the_connection_ends(string head, string method, bool close)
    {
        var request = MetricsExporter.RequestHead.Parse(head);
        Assert.NotNull(request);
        Assert.Equal((method, close), (request.Method, request.Close));
    }

    [Theory]
    [InlineData("")]
    [InlineData("GET /metrics")]
    [InlineData("GET /metrics HTTP/2.0")]
    [InlineData("\u0016\u0003\u0001 tls hello")]
    public void Request_heads_that_are_not_HTTP_1_are_refused(string head) => Assert.Null(MetricsExporter.RequestHead.Parse(head));
}
