using System.Globalization;
using System.Text;

namespace Mica.Metrics;

/// <summary>
/// Writes Prometheus' text exposition format, version 0.0.4: per metric family a <c># HELP</c> and a
/// <c># TYPE</c> line, then its samples, <c>name{label="value",...} value</c>, one per line, the
/// whole text ending with a newline. Label values escape <c>\</c>, <c>"</c> and newlines; help text
/// escapes <c>\</c> and newlines.
/// </summary>
internal sealed class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly StringBuilder _text = new();

    /// <param name="type">counter, gauge, histogram, summary or untyped.</param>
    public PrometheusText Family(string name, string type, string help)
    {
        _text.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(help)).Append('\n');
        _text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        return this;
    }

    public PrometheusText Sample(string name, long value, params ReadOnlySpan<(string Name, string Value)> labels)
    {
        Labelled(name, labels);
        _text.Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        return this;
    }

    public PrometheusText Sample(string name, double value, params ReadOnlySpan<(string Name, string Value)> labels)
    {
        Labelled(name, labels);
        _text.Append(Format(value)).Append('\n');
        return this;
    }

    /// <summary>
    /// A histogram's samples: <c>_bucket</c> per bound with the count of observations at most that
    /// bound (cumulative, so <paramref name="counts"/>, one per bucket, are added up here), the
    /// <c>+Inf</c> bucket, <c>_sum</c> and <c>_count</c>.
    /// </summary>
    /// <param name="counts">Observations per bucket, not cumulative: one per bound, and a last one for those above every bound.</param>
    public PrometheusText Histogram(string name, ReadOnlySpan<(string Name, string Value)> labels, IReadOnlyList<double> bounds,
        IReadOnlyList<long> counts, double sum)
    {
        if (counts.Count != bounds.Count + 1) throw new ArgumentException($"{bounds.Count + 1} counts expected, got {counts.Count}", nameof(counts));
        var withLe = new (string, string)[labels.Length + 1];
        labels.CopyTo(withLe);
        long cumulative = 0;
        for (var i = 0; i <= bounds.Count; i++)
        {
            cumulative += counts[i];
            withLe[^1] = ("le", i < bounds.Count ? Format(bounds[i]) : "+Inf");
            Sample(name + "_bucket", cumulative, withLe);
        }
        Sample(name + "_sum", sum, labels);
        Sample(name + "_count", cumulative, labels);
        return this;
    }

    public override string ToString() => _text.ToString();

    private void Labelled(string name, ReadOnlySpan<(string Name, string Value)> labels)
    {
        _text.Append(name);
        if (labels.Length > 0)
        {
            _text.Append('{');
            for (var i = 0; i < labels.Length; i++)
            {
                if (i > 0) _text.Append(',');
                _text.Append(labels[i].Name).Append("=\"").Append(EscapeLabel(labels[i].Value)).Append('"');
            }
            _text.Append('}');
        }
        _text.Append(' ');
    }

    internal static string EscapeLabel(string value) =>
        value.AsSpan().IndexOfAny("\\\"\n") < 0 ? value : value.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");

    internal static string EscapeHelp(string help) =>
        help.AsSpan().IndexOfAny("\\\n") < 0 ? help : help.Replace("\\", "\\\\").Replace("\n", "\\n");

    /// <summary>Go's and Prometheus' spellings: <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>, else the shortest text that reads back the same.</summary>
    internal static string Format(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);
}
