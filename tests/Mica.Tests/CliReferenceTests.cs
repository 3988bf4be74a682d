using System.CommandLine;
using System.Globalization;
using System.Text;
using Mica.Cli;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// docs/cli.md is generated from <see cref="OptionTable"/>, the table the command line is parsed
/// with: every option under its <c>--help</c> section, with its value form, default, description and
/// variables. The page cannot drift: when the table changes, this test fails until the page is
/// rewritten (<c>MICA_UPDATE_DOCS=1</c>), and an option without a description fails it too.
/// </summary>
public sealed class CliReferenceTests
{
    private const string UpdateVariable = "MICA_UPDATE_DOCS";
    private static readonly string PagePath = Path.Combine(MicaProcess.RepoRoot, "docs", "cli.md");

    [Fact]
    public void Docs_cli_md_is_what_the_option_table_generates()
    {
        var expected = Render(new OptionTable());
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            File.WriteAllText(PagePath, expected);
            return;
        }
        var actual = File.Exists(PagePath) ? File.ReadAllText(PagePath) : "";
        if (actual == expected) return;

        var want = expected.Split('\n');
        var have = actual.Split('\n');
        var line = Enumerable.Range(0, Math.Max(want.Length, have.Length))
            .First(i => i >= want.Length || i >= have.Length || want[i] != have[i]);
        Assert.Fail($"docs/cli.md is out of date with src/Mica/Cli/OptionTable.cs (first difference at line {line + 1}):\n" +
                    $"  generated: {(line < want.Length ? want[line] : "<end of page>")}\n" +
                    $"  in file:   {(line < have.Length ? have[line] : "<end of page>")}\n" +
                    $"Run with {UpdateVariable}=1 to rewrite it: {UpdateVariable}=1 dotnet test tests/Mica.Tests/Mica.Tests.csproj -c Release --filter FullyQualifiedName~CliReference");
    }

    [Fact]
    public void Every_option_has_a_section_and_a_description()
    {
        var undocumented = new OptionTable().Entries
            .Where(e => string.IsNullOrWhiteSpace(e.Option.Description) || string.IsNullOrWhiteSpace(e.Section))
            .Select(e => e.Option.Name).ToList();
        Assert.True(undocumented.Count == 0, $"options without a description or a section in OptionTable: {string.Join(", ", undocumented)}");
    }

    /// <summary>The page: a fixed introduction, a contents line, then each section's options in the table's order.</summary>
    internal static string Render(OptionTable table)
    {
        var page = new StringBuilder();
        page.Append("""
            # Command-line reference

            <!-- Generated from src/Mica/Cli/OptionTable.cs by tests/Mica.Tests/CliReferenceTests.cs: do not edit.
                 After changing an option: MICA_UPDATE_DOCS=1 dotnet test tests/Mica.Tests/Mica.Tests.csproj -c Release --filter FullyQualifiedName~CliReference -->

            ```
            mica [OPTIONS] APP
            ```

            `APP` is `module:attribute`; `module` alone means `module:app`, and the attribute may be dotted
            (`pkg.mod:holder.app`). With `--factory`, it is called to get the app.

            The options are the ones `mica --help` shows, in the same sections and order: Granian's options
            with Granian's names, kinds, defaults and ranges, plus Mica's own. How each one maps onto Mica,
            option by option: [granian-compat.md](granian-compat.md).

            - **Environment**: every option can be set by a variable instead, `MICA_<NAME>` or, when that is
              unset or empty, `GRANIAN_<NAME>` (an option taken from uvicorn also reads uvicorn's variable,
              named below). An option on the command line wins over any variable. A variable is parsed and
              checked exactly like the flag; an empty one counts as unset.
            - **On/off options** (`--x` / `--no-x`): the last of the two given wins. As a variable, they take
              `1`, `true`, `t`, `yes`, `y`, `on` or `0`, `false`, `f`, `no`, `n`, `off`.
            - **Repeatable options** are given once per value (`--env-files a.env --env-files b.env`); as a
              variable, the values are split as said below (on `:` for paths, on whitespace otherwise).
            - **Durations** (`DURATION`) are seconds, as a number (`90`) or as text with units in the order
              `d`, `h`, `m`, `s` (`1h30m`, `2m30s`).
            - **Ranges**: `INTEGER [x>=1]` and `DURATION [1s-1800s]` are checked; a value outside is a usage
              error.
            - **Exit codes**: 2 for a usage error (a bad option or value: one line on stderr), 1 when the
              server cannot start (the port, the PID file, the app cannot be loaded, lifespan startup
              failed), 0 after a graceful stop.
            - `--version` prints the version; `-h`, `--help` prints the options with their defaults and `MICA_`
              variables.


            """);
        var sections = table.Entries.Select(e => e.Section).Distinct().ToList();
        page.Append("Sections: ").Append(string.Join(" · ", sections.Select(s => $"[{s}](#{Anchor(s)})"))).Append("\n");
        foreach (var section in sections)
        {
            page.Append($"\n## {section}\n");
            foreach (var entry in table.Entries.Where(e => e.Section == section))
                AppendOption(page, entry);
        }
        return page.ToString();
    }

    private static void AppendOption(StringBuilder page, OptionTable.Entry entry)
    {
        var option = entry.Option;
        page.Append($"\n### `{option.Name}`\n\n");
        var facts = new List<string>
        {
            entry.Negation is { } negation
                ? $"`{option.Name}` / `{negation.Name}`"
                : $"`{option.Name} {option.HelpName}`",
        };
        if (DefaultText(option) is { } shown) facts.Add($"default: {shown}");
        var variables = new List<string> { $"`MICA_{entry.EnvName}`", $"`GRANIAN_{entry.EnvName}`" };
        if (entry.PlainEnv is { } plain) variables.Add($"`{plain}`");
        var environment = "environment: " + string.Join(", ", variables);
        if (entry.EnvSplit is { } split) environment += split == ' ' ? " (values split on whitespace)" : $" (values split on `{split}`)";
        facts.Add(environment);
        page.Append(string.Join(" · ", facts)).Append("\n\n");
        page.Append(Sentence(option.Description ?? "")).Append('\n');
    }

    /// <summary>A default as the page shows it; null when the option has none (unset unless given).</summary>
    private static string? DefaultText(Option option)
    {
        if (!option.HasDefaultValue) return null;
        return option.GetDefaultValue() switch
        {
            null or "" => null,
            true => "on",
            false => "off",
            IFormattable value => $"`{value.ToString(null, CultureInfo.InvariantCulture)}`",
            var value => $"`{value}`",
        };
    }

    private static string Sentence(string text) => text.EndsWith('.') ? text : text + ".";

    /// <summary>GitHub's heading anchor: lower case, punctuation other than '-' dropped, spaces to '-'.</summary>
    private static string Anchor(string heading) =>
        new(heading.ToLowerInvariant().Where(c => char.IsLetterOrDigit(c) || c is '-' or ' ').Select(c => c == ' ' ? '-' : c).ToArray());
}
