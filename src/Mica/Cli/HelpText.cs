using System.CommandLine;
using System.Text;

namespace Mica.Cli;

/// <summary>
/// <c>mica --help</c>, laid out as Granian's (click's) help is: the usage line, then every option in
/// Granian's order under its section's heading, each with its value's form, its default and the
/// environment variable that sets it.
/// </summary>
internal static class HelpText
{
    private const int NameColumn = 34;
    private const int Width = 110;

    public static string Render(OptionTable table, string summary, string appHelp)
    {
        var text = new StringBuilder();
        text.Append("Usage: mica [OPTIONS] APP\n\n");
        text.Append($"  {summary}\n\n");
        text.Append($"  APP: {appHelp}.\n");
        text.Append("  Every option can also be set from the environment, as MICA_<NAME> or GRANIAN_<NAME>.\n");
        string? section = null;
        foreach (var entry in table.Entries)
        {
            if (entry.Section != section)
            {
                section = entry.Section;
                text.Append($"\n{section}:\n");
            }
            var option = entry.Option;
            var names = entry.Negation is { } negation ? $"{option.Name} / {negation.Name}" : $"{option.Name} {option.HelpName}";
            var notes = new List<string>();
            if (DefaultText(option) is { } shown) notes.Add($"default: {shown}");
            notes.Add($"env var: MICA_{entry.EnvName}");
            Append(text, names, $"{option.Description}  [{string.Join("; ", notes)}]");
        }
        text.Append("\nOther:\n");
        Append(text, "--version", "Show the version and exit.");
        Append(text, "-h, --help", "Show this message and exit.");
        return text.ToString();
    }

    private static string? DefaultText(Option option)
    {
        if (!option.HasDefaultValue) return null;
        return option.GetDefaultValue() switch
        {
            null or "" => null,
            true => "enabled",
            false => "disabled",
            double d => d.ToString(System.Globalization.CultureInfo.InvariantCulture),
            var value => value.ToString(),
        };
    }

    /// <summary>One option: its names, then its help wrapped in the second column (on the next line when the names are long).</summary>
    private static void Append(StringBuilder text, string names, string help)
    {
        var line = $"  {names}";
        if (line.Length > NameColumn - 2)
        {
            text.Append(line).Append('\n');
            line = "";
        }
        var words = help.Split(' ');
        var current = new StringBuilder(line.PadRight(NameColumn));
        var empty = true;
        foreach (var word in words)
        {
            if (!empty && current.Length + 1 + word.Length > Width)
            {
                text.Append(current.ToString().TrimEnd()).Append('\n');
                current.Clear().Append(new string(' ', NameColumn));
                empty = true;
            }
            if (!empty) current.Append(' ');
            current.Append(word);
            empty = false;
        }
        text.Append(current.ToString().TrimEnd()).Append('\n');
    }
}
