using System.Text.Json;
using Mica.Cli;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// Every option read from <c>MICA_&lt;NAME&gt;</c> and from <c>GRANIAN_&lt;NAME&gt;</c>
/// configures the server exactly as the flag does, for every kind of option (text, number, choice,
/// on/off pair, duration, octal, lists split on ':' or ' ').
/// </summary>
public sealed class EnvironmentOptionTests : IDisposable
{
    private readonly ScratchDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>A value for the variable, the flag's arguments for the same setting, and arguments both need.</summary>
    private sealed record Sample(string Value, string[] Flag, string[] Together);

    /// <summary>
    /// Options that are accepted but change nothing in the server's configuration, so only their
    /// parsing can be compared: Granian's tuning Kestrel has no knob for.
    /// </summary>
    private static readonly string[] WithoutEffect = ["--http2-adaptive-window", "--http2-max-send-buffer-size", "--http1-pipeline-flush"];

    private Sample? SampleFor(string option)
    {
        var dir = _dir.Path;
        string File(string name, string text = "")
        {
            var path = _dir.File(name);
            System.IO.File.WriteAllText(path, text);
            return path;
        }
        string Dir(string name) => Directory.CreateDirectory(Path.Combine(dir, name)).FullName;
        Sample Same(string value) => new(value, [option, value], []);
        Sample Flag(bool value) => new(value ? "true" : "false", [value ? option : "--no-" + option[2..]], []);
        return option switch
        {
            "--host" => Same("0.0.0.0"),
            "--port" => Same("8123"),
            "--uds" => Same(Path.Combine(dir, "s.sock")),
            "--uds-permissions" => Same("660"),
            "--interface" => Same("rsgi"),
            "--http" => Same("2"),
            "--loop" => Same("asyncio"),
            "--backlog" => Same("2048"),
            "--http1-header-read-timeout" => Same("5000"),
            "--http1-buffer-size" => Same("65536"),
            "--runtime-threads" => Same("3"),
            "--runtime-mode" => Same("st"),
            "--runtime-blocking-threads" => Same("64"),
            "--task-impl" => Same("rust"),
            "--http1-pipeline-flush" => Flag(true),
            "--http1-keep-alive" or "--log" or "--ws" or "--proxy-headers" => Flag(false),
            "--url-path-prefix" => Same("/api"),
            "--factory" or "--respawn-failed-workers" or "--reload" or "--reload-ignore-worker-failure" or "--access-log"
                or "--http2-adaptive-window" => Flag(true),
            "--ssl-client-verify" => new("true", [option], ["--ssl-certificate", "c.pem", "--ssl-keyfile", "k.pem", "--ssl-ca", "ca.pem"]),
            "--working-dir" => Same(Dir("wd")),
            "--log-level" => Same("debug"),
            "--log-config" => Same(File("log.json", """{"version": 1}""")),
            "--access-log-fmt" => new("%(path)s", [option, "%(path)s"], ["--access-log"]),
            "--workers-kill-timeout" => Same("7"),
            "--python" => Same("/usr/bin/python3"),
            "--workers" => Same("3"),
            "--respawn-interval" => Same("1.5"),
            "--rss-sample-interval" => Same("2m"),
            "--rss-samples" => Same("4"),
            "--workers-lifetime" => Same("1h"),
            "--workers-max-rss" => Same("512"),
            "--process-name" => Same("my-app"),
            "--pid-file" => Same(Path.Combine(dir, "m.pid")),
            "--reload-paths" => new($"{Dir("a")}:{Dir("b")}", [option, Path.Combine(dir, "a"), option, Path.Combine(dir, "b")], []),
            "--reload-ignore-dirs" => new("node_modules .venv", [option, "node_modules", option, ".venv"], []),
            "--reload-ignore-patterns" => new(@"\.tmp$ ^~", [option, @"\.tmp$", option, "^~"], []),
            "--reload-ignore-paths" => new("/x/y:/z", [option, "/x/y", option, "/z"], []),
            "--reload-tick" => Same("200"),
            "--blocking-threads" => Same("4"),
            "--blocking-threads-idle-timeout" => Same("60"),
            "--backpressure" => Same("64"),
            "--http2-initial-connection-window-size" or "--http2-initial-stream-window-size" => Same("2097152"),
            "--http2-keep-alive-interval" => Same("1000"),
            "--http2-keep-alive-timeout" => Same("30"),
            "--http2-max-concurrent-streams" => Same("50"),
            "--http2-max-frame-size" => Same("32768"),
            "--http2-max-headers-size" => Same("65536"),
            "--http2-max-send-buffer-size" => Same("65536"),
            "--ssl-certificate" => new("c.pem", [option, "c.pem"], ["--ssl-keyfile", "k.pem"]),
            "--ssl-keyfile" => new("k.pem", [option, "k.pem"], ["--ssl-certificate", "c.pem"]),
            "--ssl-keyfile-password" => new("secret", [option, "secret"], ["--ssl-certificate", "c.pem", "--ssl-keyfile", "k.pem"]),
            "--ssl-protocol-min" => new("tls1.2", [option, "tls1.2"], ["--ssl-certificate", "c.pem", "--ssl-keyfile", "k.pem"]),
            "--ssl-ca" => new("ca.pem", [option, "ca.pem"], ["--ssl-certificate", "c.pem", "--ssl-keyfile", "k.pem"]),
            "--ssl-crl" => new("a.crl:b.crl", [option, "a.crl", option, "b.crl"], ["--ssl-certificate", "c.pem", "--ssl-keyfile", "k.pem"]),
            "--static-path-route" => new("/assets /media", [option, "/assets", option, "/media"],
                ["--static-path-mount", Dir("s1"), "--static-path-mount", Dir("s2")]),
            "--static-path-mount" => new($"{Dir("m1")}:{Dir("m2")}", [option, Path.Combine(dir, "m1"), option, Path.Combine(dir, "m2")],
                ["--static-path-route", "/a", "--static-path-route", "/b"]),
            "--static-path-dir-to-file" => new("index.html", [option, "index.html"], ["--static-path-mount", Dir("m3")]),
            "--static-path-expires" => new("2h", [option, "2h"], ["--static-path-mount", Dir("m4")]),
            "--env-files" => new($"{File("a.env")}:{File("b.env")}", [option, Path.Combine(dir, "a.env"), option, Path.Combine(dir, "b.env")], []),
            "--forwarded-allow-ips" => Same("10.0.0.0/8,192.168.1.1"),
            "--metrics" => Flag(true),
            "--metrics-scrape-interval" => Same("30"),
            "--metrics-address" => Same("0.0.0.0"),
            "--metrics-port" => Same("9100"),
            "--limit-request-line" => Same("4096"),
            "--limit-request-fields" => Same("50"),
            "--limit-request-fields-size" => Same("16384"),
            "--limit-request-body" => Same("10737418240"),
            "--limit-concurrency" => Same("500"),
            "--timeout-keep-alive" => Same("1m"),
            "--min-request-body-rate" => Same("0"),
            "--min-response-rate" => Same("1000"),
            _ => null,
        };
    }

    public static TheoryData<string> EveryOption()
    {
        var data = new TheoryData<string>();
        foreach (var entry in new OptionTable().Entries) data.Add(entry.Option.Name);
        return data;
    }

    private static string Configured(string[] args, Dictionary<string, string> environment) =>
        TryConfigured(args, environment) ?? throw new Xunit.Sdk.XunitException($"refused: {string.Join(' ', args)} with {string.Join(", ", environment)}");

    /// <summary>The configuration as JSON, or null when the arguments are refused.</summary>
    private static string? TryConfigured(string[] args, Dictionary<string, string> environment)
    {
        var (options, _) = MicaCommand.Parse([.. args, "app:app"], name => environment.GetValueOrDefault(name));
        return options is null ? null : JsonSerializer.Serialize(options);
    }

    [Theory]
    [MemberData(nameof(EveryOption))]
    public void MICA_and_GRANIAN_variables_configure_what_the_flag_does(string option)
    {
        var sample = SampleFor(option);
        Assert.True(sample is not null, $"no sample value for {option}: add one so its variable is tested");
        var envName = new OptionTable().Entries.Single(e => e.Option.Name == option).EnvName;

        var byFlag = Configured([.. sample!.Together, .. sample.Flag], []);
        var byDefault = TryConfigured(sample.Together, []);   // null: the option is needed by its companions
        var byMica = Configured(sample.Together, new() { ["MICA_" + envName] = sample.Value });
        var byGranian = Configured(sample.Together, new() { ["GRANIAN_" + envName] = sample.Value });

        Assert.Equal(byFlag, byMica);
        Assert.Equal(byFlag, byGranian);
        if (!WithoutEffect.Contains(option)) Assert.NotEqual(byDefault, byFlag);   // the sample really sets something
    }

    [Fact]
    public void The_flag_given_wins_over_the_variable()
    {
        Assert.Equal(Configured(["--workers", "2"], []), Configured(["--workers", "2"], new() { ["MICA_WORKERS"] = "5" }));
    }
}
