using Mica.Cli;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// Every option given a value it does not take (out of its range, not one of its choices, a file
/// that is not there, a malformed address or format) stops mica before anything starts: exit 2 and
/// one line on stderr naming the option. An on/off pair takes no value on the command line, so its
/// variable is given a word that is not a boolean. Accepted values are <see cref="EnvironmentOptionTests"/>'.
/// </summary>
public sealed class OptionRangeTests
{
    /// <summary>
    /// Options that take any text: a name, a secret, or a path whose problems show only when the
    /// server starts (a Unix socket, TLS files, the PID file: each is a one-line error with exit 1
    /// then, tested where the option is).
    /// </summary>
    private static readonly string[] FreeForm =
        ["--uds", "--ssl-certificate", "--ssl-keyfile", "--ssl-keyfile-password", "--ssl-ca", "--ssl-crl", "--process-name",
         "--pid-file", "--static-path-dir-to-file", "--reload-ignore-dirs", "--reload-ignore-paths"];

    public static TheoryData<string> Options()
    {
        var data = new TheoryData<string>();
        foreach (var entry in new OptionTable().Entries.Where(e => !FreeForm.Contains(e.Option.Name))) data.Add(entry.Option.Name);
        return data;
    }

    /// <summary>The arguments that give <paramref name="option"/> a value it does not take, and the variables to set.</summary>
    private static (string[] Args, Dictionary<string, string?> Environment) Invalid(string option)
    {
        var entry = new OptionTable().Entries.Single(e => e.Option.Name == option);
        if (entry.Negation is not null) return ([], new() { [$"MICA_{entry.EnvName}"] = "maybe" });
        string[] args = option switch
        {
            "--host" => [option, "0.0.0.0:8000"],
            "--port" or "--metrics-port" => [option, "70000"],
            "--uds-permissions" => [option, "999"],
            "--interface" => [option, "cgi"],
            "--http" => [option, "3"],
            "--loop" => [option, "tokio"],
            "--backlog" => [option, "10"],
            "--http1-header-read-timeout" or "--runtime-threads" or "--runtime-blocking-threads" or "--workers" or "--rss-samples"
                or "--workers-max-rss" or "--blocking-threads" or "--backpressure" or "--http2-keep-alive-interval"
                or "--http2-max-headers-size" => [option, "0"],
            "--http1-buffer-size" => [option, "1024"],
            "--runtime-mode" => [option, "xt"],
            "--task-impl" => [option, "trio"],
            "--url-path-prefix" => [option, "api"],
            "--working-dir" or "--reload-paths" or "--static-path-mount" => [option, "/no/such/dir"],
            "--log-level" => [option, "loud"],
            "--log-config" or "--env-files" => [option, "/no/such/file.json"],
            "--access-log-fmt" => ["--access-log", option, "%(nope)s"],
            "--workers-kill-timeout" or "--rss-sample-interval" or "--http2-keep-alive-timeout" or "--metrics-scrape-interval" => [option, "0"],
            "--python" => [option, "/no/such/python3"],
            "--respawn-interval" => [option, "-1"],
            "--workers-lifetime" => [option, "59"],
            "--reload-ignore-patterns" => [option, "("],
            "--reload-tick" => [option, "10"],
            "--blocking-threads-idle-timeout" => [option, "1"],
            "--http2-initial-connection-window-size" or "--http2-initial-stream-window-size" or "--http2-max-send-buffer-size" => [option, "10"],
            "--http2-max-concurrent-streams" => [option, "1"],
            "--http2-max-frame-size" => [option, "100"],
            "--ssl-protocol-min" => [option, "ssl3"],
            "--static-path-route" => [option, "static", "--static-path-mount", MicaProcess.AppsDir],
            "--static-path-expires" => [option, "-1"],
            "--metrics-address" => [option, "not an address"],
            "--forwarded-allow-ips" => [option, "10.0.0.0/99"],
            "--limit-request-line" => [option, "100"],
            "--limit-request-fields" or "--limit-concurrency" or "--timeout-keep-alive" => [option, "0"],
            "--limit-request-fields-size" => [option, "512"],
            "--limit-request-body" or "--min-request-body-rate" or "--min-response-rate" => [option, "-1"],
            _ => throw new InvalidOperationException($"no invalid value for {option}: add one here, or list it as free-form"),
        };
        return (args, []);
    }

    [Theory]
    [MemberData(nameof(Options))]
    public async Task A_value_the_option_does_not_take_is_one_line_naming_it_and_exit_2(string option)
    {
        var (args, environment) = Invalid(option);
        await using var mica = await MicaProcess.LaunchAsync([.. args, "hello:app"], environment, raw: true);
        var exitCode = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exitCode == 2, $"exit code {exitCode}\n{mica.Dump()}");
        var line = Assert.Single(mica.ServerStderrLines);
        Assert.StartsWith("mica: error: ", line);
        Assert.Contains($"'{option}'", line);
        Assert.Empty(mica.SpawnedWorkers);
    }
}
