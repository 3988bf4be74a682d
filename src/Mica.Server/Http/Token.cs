using System.Buffers;
using Microsoft.AspNetCore.Http;

namespace Mica.Server.Http;

/// <summary>
/// RFC 9110 §5.6.2's token: what methods and field names are made of. Kestrel refuses whitespace,
/// a colon or a byte beyond ASCII in a field name, but lets through control characters and
/// delimiters ("X(y", "X\x01y"), which Mica checks for itself.
/// </summary>
internal static class Token
{
    private static readonly SearchValues<char> Chars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    public static bool IsValid(ReadOnlySpan<char> text) => text.Length > 0 && !text.ContainsAnyExcept(Chars);

    /// <summary>Every field name of <paramref name="headers"/> is a token.</summary>
    public static bool AllNamesValid(IHeaderDictionary headers)
    {
        foreach (var (name, _) in headers)
            if (!IsValid(name)) return false;
        return true;
    }
}
