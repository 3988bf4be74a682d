using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;

namespace Mica.Server.Python;

/// <summary>Conversions between C# strings and Python <c>str</c>/<c>bytes</c>. GIL held for all but <see cref="Utf8Z"/>.</summary>
internal static unsafe class PyStr
{
    private static readonly ConcurrentDictionary<string, nint> CStrings = new();

    /// <summary>
    /// A NUL-terminated UTF-8 copy of a constant C# string, allocated once and kept for the
    /// process's life (the C API keeps some of these pointers, e.g. method and module names).
    /// </summary>
    public static byte* Utf8Z(string s) => (byte*)CStrings.GetOrAdd(s, static s =>
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        var p = (byte*)NativeMemory.Alloc((nuint)bytes.Length + 1);
        bytes.CopyTo(new Span<byte>(p, bytes.Length));
        p[bytes.Length] = 0;
        return (nint)p;
    });

    /// <summary>An interned Python str for a constant; owned by the caller (usually kept forever).</summary>
    public static nint Intern(string s) => PyRef.Check(Py.UnicodeInternFromString(Utf8Z(s)));

    public static PyRef New(ReadOnlySpan<char> s)
    {
        var max = Encoding.UTF8.GetMaxByteCount(s.Length);
        if (max <= 1024)
        {
            var buffer = stackalloc byte[max];
            var n = Encoding.UTF8.GetBytes(s, new Span<byte>(buffer, max));
            return PyRef.Steal(Py.UnicodeFromStringAndSize(buffer, n));
        }
        var bytes = Encoding.UTF8.GetBytes(s.ToString());
        fixed (byte* p = bytes) return PyRef.Steal(Py.UnicodeFromStringAndSize(p, bytes.Length));
    }

    /// <summary>
    /// A str straight from UTF-16 text whose characters are all below U+D800, such as the latin-1
    /// text Kestrel makes of HTTP bytes: no intermediate encoding. Python stores it compactly.
    /// </summary>
    public static PyRef FromChars(ReadOnlySpan<char> s)
    {
        fixed (char* p = s) return PyRef.Steal(Py.UnicodeFromKindAndData(Py.TwoByteKind, p, s.Length));
    }

    public static PyRef Bytes(ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data) return PyRef.Steal(Py.BytesFromStringAndSize(p, data.Length));
    }

    /// <summary>Latin-1 bytes of a header-like string (each char is one byte, as HTTP/1.1 carries them).</summary>
    public static PyRef Latin1Bytes(string s)
    {
        if (s.Length <= 512)
        {
            var buffer = stackalloc byte[s.Length];
            var n = Encoding.Latin1.GetBytes(s, new Span<byte>(buffer, s.Length));
            return PyRef.Steal(Py.BytesFromStringAndSize(buffer, n));
        }
        return Bytes(Encoding.Latin1.GetBytes(s));
    }

    /// <summary>The contents of a bytes object, borrowed: valid while the object lives.</summary>
    public static ReadOnlySpan<byte> AsSpan(nint bytes)
    {
        byte* p;
        nint n;
        if (Py.BytesAsStringAndSize(bytes, &p, &n) != 0) throw PythonException.Fetch();
        return new ReadOnlySpan<byte>(p, (int)n);
    }

    /// <summary>
    /// A str's UTF-8 form, borrowed from the str (valid while it lives); false, with no error
    /// left set, when the object is not a str.
    /// </summary>
    public static bool TryAsUtf8(nint obj, out ReadOnlySpan<byte> utf8)
    {
        nint n;
        var p = Py.UnicodeAsUTF8AndSize(obj, &n);
        if (p == null)
        {
            Py.ErrClear();
            utf8 = default;
            return false;
        }
        utf8 = new ReadOnlySpan<byte>(p, (int)n);
        return true;
    }

    /// <summary>A Python str as a C# string; throws if it is not a str.</summary>
    public static string ToManaged(nint str)
    {
        nint n;
        var p = Py.UnicodeAsUTF8AndSize(str, &n);
        if (p == null) throw PythonException.Fetch();
        return Encoding.UTF8.GetString(p, (int)n);
    }

    /// <summary>str(obj), or null (error cleared) if that fails. Used while reporting errors.</summary>
    public static string? Of(nint obj)
    {
        var s = Py.ObjectStr(obj);
        if (s == 0) { Py.ErrClear(); return null; }
        try
        {
            nint n;
            var p = Py.UnicodeAsUTF8AndSize(s, &n);
            if (p == null) { Py.ErrClear(); return null; }
            return Encoding.UTF8.GetString(p, (int)n);
        }
        finally { Py.DecRef(s); }
    }

    public static string? OfAttr(nint obj, string attr)
    {
        var a = Py.GetAttrString(obj, Utf8Z(attr));
        if (a == 0) { Py.ErrClear(); return null; }
        try { return Of(a); }
        finally { Py.DecRef(a); }
    }

    /// <summary>Concatenates an iterable of str (e.g. formatted traceback lines).</summary>
    public static string JoinLines(nint iterable)
    {
        var sb = new StringBuilder();
        using var it = PyRef.Steal(Py.GetIter(iterable));
        while (true)
        {
            var item = Py.IterNext(it.Handle);
            if (item == 0)
            {
                if (Py.ErrOccurred() != 0) throw PythonException.Fetch();
                break;
            }
            using var line = PyRef.Steal(item);
            sb.Append(ToManaged(line.Handle));
        }
        return sb.ToString();
    }
}
