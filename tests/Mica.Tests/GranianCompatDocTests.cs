using Mica.Cli;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>docs/granian-compat.md lists every option Mica reads, with its variables and whether Mica implements it.</summary>
public sealed class GranianCompatDocTests
{
    private static readonly string[] Rows = File.ReadAllLines(Path.Combine(MicaProcess.RepoRoot, "docs", "granian-compat.md"))
        .Where(l => l.StartsWith("| `", StringComparison.Ordinal)).ToArray();

    public static TheoryData<string> Options()
    {
        var data = new TheoryData<string>();
        foreach (var entry in new OptionTable().Entries) data.Add(entry.Option.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(Options))]
    public void The_option_has_its_row(string option)
    {
        var entry = new OptionTable().Entries.Single(e => e.Option.Name == option);
        var row = Rows.SingleOrDefault(r => r.StartsWith($"| `{option}`", StringComparison.Ordinal) || r.StartsWith($"| `{option}/", StringComparison.Ordinal));
        Assert.True(row is not null, $"docs/granian-compat.md has no row for {option}");
        Assert.Contains($"`MICA_{entry.EnvName}`, `GRANIAN_{entry.EnvName}`", row);
        Assert.Contains(entry.Implemented ? "| yes |" : "| not yet (exit 2) |", row);
    }

    [Fact]
    public void No_row_names_an_option_Mica_does_not_read() => Assert.Equal(new OptionTable().Entries.Count, Rows.Length);
}
