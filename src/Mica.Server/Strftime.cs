using System.Globalization;
using System.Text;

namespace Mica.Server;

/// <summary>
/// Python's <c>time.strftime</c> directives for log date formats (<c>datefmt</c>): %Y %y %m %d %H
/// %I %M %S %p %j %a %A %b %B %z %Z %f (microseconds) %%. Any other directive is kept as written.
/// </summary>
internal static class Strftime
{
    public static string Format(DateTimeOffset time, string format)
    {
        var text = new StringBuilder(format.Length + 16);
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                text.Append(format[i]);
                continue;
            }
            var directive = format[++i];
            var c = CultureInfo.InvariantCulture;
            text.Append(directive switch
            {
                'Y' => time.Year.ToString("0000", c),
                'y' => (time.Year % 100).ToString("00", c),
                'm' => time.Month.ToString("00", c),
                'd' => time.Day.ToString("00", c),
                'H' => time.Hour.ToString("00", c),
                'I' => ((time.Hour + 11) % 12 + 1).ToString("00", c),
                'M' => time.Minute.ToString("00", c),
                'S' => time.Second.ToString("00", c),
                'p' => time.Hour < 12 ? "AM" : "PM",
                'j' => time.DayOfYear.ToString("000", c),
                'a' => time.ToString("ddd", c),
                'A' => time.ToString("dddd", c),
                'b' => time.ToString("MMM", c),
                'B' => time.ToString("MMMM", c),
                'z' => (time.Offset < TimeSpan.Zero ? "-" : "+") + time.Offset.Duration().ToString("hhmm", c),
                'Z' => time.Offset == TimeSpan.Zero ? "UTC" : TimeZoneInfo.Local.StandardName,
                'f' => (time.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", c),
                '%' => "%",
                _ => "%" + directive,
            });
        }
        return text.ToString();
    }
}
