using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>The dotenv syntax of <c>--env-files</c> (python-dotenv's, which Granian uses).</summary>
public sealed class EnvFilesParserTests
{
    private static Dictionary<string, string> Parse(string text, Dictionary<string, string>? environment = null) =>
        EnvFiles.Parse(text, name => environment?.GetValueOrDefault(name)).ToDictionary(p => p.Key, p => p.Value);

    [Fact]
    public void Plain_values_export_comments_and_spaces_around_the_equals()
    {
        var values = Parse("""
            # a comment
            A=1
            export B = two words  # trailing comment
              C=x#not-a-comment
            D=
            BARE
            """);
        Assert.Equal(new Dictionary<string, string> { ["A"] = "1", ["B"] = "two words", ["C"] = "x#not-a-comment", ["D"] = "" }, values);
    }

    [Fact]
    public void Single_quotes_are_literal_and_double_quotes_take_escapes()
    {
        var values = Parse("""
            S='a ${A} \n # kept'
            D="tab\there \"q\" \\ ${A}"
            E='it\'s'
            """, new() { ["A"] = "x" });
        Assert.Equal("a ${A} \\n # kept", values["S"]);
        Assert.Equal("tab\there \"q\" \\ x", values["D"]);
        Assert.Equal("it's", values["E"]);
    }

    [Fact]
    public void Quoted_values_span_lines()
    {
        var values = Parse("KEY=\"-----BEGIN-----\nline two\n-----END-----\"\nNEXT=after\nS='one\ntwo'\n");
        Assert.Equal("-----BEGIN-----\nline two\n-----END-----", values["KEY"]);
        Assert.Equal("after", values["NEXT"]);
        Assert.Equal("one\ntwo", values["S"]);
    }

    [Fact]
    public void Variables_expand_from_earlier_lines_then_the_environment_with_defaults()
    {
        var values = Parse("""
            HOST=db
            URL=postgres://${HOST}:${PORT:-5432}/${NAME}
            FROM_ENV=${HOME_DIR}
            """, new() { ["HOME_DIR"] = "/home/x" });
        Assert.Equal("postgres://db:5432/", values["URL"]);
        Assert.Equal("/home/x", values["FROM_ENV"]);
    }

    [Theory]
    [InlineData("=value", "line 1")]
    [InlineData("A=1\nnot an assignment at all\n", "line 2")]
    [InlineData("A=\"never closed\nB=2\n", "line 1: unterminated")]
    [InlineData("A='x' junk", "line 1: unexpected text")]
    public void Syntax_errors_name_the_line(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => Parse(text));
        Assert.Contains(expected, error.Message);
    }
}

/// <summary><c>--env-files</c> end to end: the app sees the variables; bad files stop the server with one line.</summary>
public sealed class EnvFilesServerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("mica-env-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task The_app_sees_the_files_variables_later_files_win_and_the_servers_environment_wins_over_both()
    {
        var first = Write("first.env", "MICA_T_A=from-first\nMICA_T_B=\"multi\nline\"\nMICA_T_KEPT=from-file\n");
        var second = Write("second.env", "export MICA_T_A=from-second\n");
        await using var mica = await MicaProcess.StartAsync("env_app:app", ["--env-files", first, "--env-files", second],
            new Dictionary<string, string?> { ["MICA_T_KEPT"] = "from-server" });
        using var client = mica.CreateClient();
        var json = await client.GetStringAsync("/?name=MICA_T_A&name=MICA_T_B&name=MICA_T_KEPT&name=MICA_T_NONE");
        var values = JsonSerializer.Deserialize<Dictionary<string, string?>>(json)!;
        Assert.Equal("from-second", values["MICA_T_A"]);
        Assert.Equal("multi\nline", values["MICA_T_B"]);
        Assert.Equal("from-server", values["MICA_T_KEPT"]);
        Assert.Null(values["MICA_T_NONE"]);
        Assert.Equal(0, await mica.StopAsync());
    }

    [Fact]
    public async Task A_syntax_error_is_one_line_naming_the_file_and_line_and_exit_1()
    {
        var bad = Write("bad.env", "GOOD=1\nthis line is wrong\n");
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--port", "0", "--env-files", bad, "env_app:app"], raw: true);
        Assert.Equal(1, await mica.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var errors = mica.ServerStderrLines.Where(l => l.Contains("[ERROR]", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        Assert.Contains("bad.env", errors[0]);
        Assert.Contains("line 2", errors[0]);
    }

    [Fact]
    public async Task A_missing_file_is_a_usage_error()
    {
        await using var mica = await MicaProcess.LaunchAsync(
            ["--python", MicaProcess.Python, "--working-dir", MicaProcess.AppsDir, "--env-files", Path.Combine(_dir.FullName, "missing.env"), "env_app:app"], raw: true);
        Assert.Equal(2, await mica.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Single(mica.ServerStderrLines);
        Assert.Contains("--env-files", mica.ServerStderrLines[0]);
    }
}
