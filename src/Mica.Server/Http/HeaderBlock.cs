using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Mica.Server.Python;
using Microsoft.AspNetCore.Http;

namespace Mica.Server.Http;

/// <summary>How an interface's apps give header names and values.</summary>
internal enum HeaderForm
{
    /// <summary>ASGI: bytes, as they go on the wire.</summary>
    Bytes,
    /// <summary>WSGI (PEP 3333): str whose characters are all latin-1.</summary>
    Latin1Text,
    /// <summary>RSGI: str, sent as UTF-8.</summary>
    Utf8Text,
}

/// <summary>
/// An app's response headers, copied out of Python (GIL held) into one pooled buffer, so the Kestrel
/// side can apply them without the GIL. Layout: [name length][value length][name][value], repeated,
/// lengths as little-endian int32, bytes as they go on the wire (latin-1).
/// </summary>
internal static unsafe class HeaderBlock
{
    /// <summary>
    /// Copies an iterable of (name, value) pairs, in the form the interface prescribes
    /// (<paramref name="form"/>). Returns a rented buffer.
    /// </summary>
    public static (byte[] Buffer, int Length) FromPython(nint headers, HeaderForm form)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1024);
        var length = 0;
        try
        {
            if (headers == Py.None) return (buffer, 0);
            using var iterator = PyRef.Steal(Py.GetIter(headers));
            while (true)
            {
                var next = Py.IterNext(iterator.Handle);
                if (next == 0)
                {
                    if (Py.ErrOccurred() != 0) throw PythonException.Fetch();
                    return (buffer, length);
                }
                using var pair = PyRef.Steal(next);
                if (form != HeaderForm.Bytes && Py.SequenceSize(pair.Handle) != 2)
                {
                    Py.ErrClear();
                    throw new PythonError(Py.ExcTypeError, $"each {Interface(form)} response header must be a (name, value) tuple of two str");
                }
                using var name = PyRef.Steal(Py.SequenceGetItem(pair.Handle, 0));
                using var value = PyRef.Steal(Py.SequenceGetItem(pair.Handle, 1));
                var nameBytes = Encode(name.Handle, form, "name");
                var valueBytes = Encode(value.Handle, form, "value");
                var needed = length + 8 + nameBytes.Length + valueBytes.Length;
                if (needed > buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(length), nameBytes.Length);
                BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(length + 4), valueBytes.Length);
                nameBytes.CopyTo(buffer.AsSpan(length + 8));
                valueBytes.CopyTo(buffer.AsSpan(length + 8 + nameBytes.Length));
                length = needed;
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private static string Interface(HeaderForm form) => form == HeaderForm.Latin1Text ? "WSGI" : "RSGI";

    private static ReadOnlySpan<byte> Encode(nint obj, HeaderForm form, string what)
    {
        switch (form)
        {
            case HeaderForm.Bytes:
                return PyStr.AsSpan(obj);
            case HeaderForm.Utf8Text:
                // As Granian sends them: the str's UTF-8 bytes (ASCII in practice).
                return PyStr.TryAsUtf8(obj, out var utf8) ? utf8
                    : throw new PythonError(Py.ExcTypeError, $"RSGI response header {what}s must be str");
            default:
                return Latin1(obj, what);
        }
    }

    /// <summary>
    /// A str's latin-1 bytes. The common all-ASCII header is borrowed from the str's own UTF-8 form
    /// (no copy); anything else is converted, and a character beyond latin-1 is a ValueError.
    /// </summary>
    private static ReadOnlySpan<byte> Latin1(nint str, string what)
    {
        if (!PyStr.TryAsUtf8(str, out var utf8))
            throw new PythonError(Py.ExcTypeError, $"WSGI response header {what}s must be str");
        if (Py.UnicodeGetLength(str) == utf8.Length) return utf8;
        var s = Encoding.UTF8.GetString(utf8);
        foreach (var c in s)
            if (c > '\u00ff') throw new PythonError(Py.ExcValueError, $"WSGI response header {what} '{s}' is not latin-1");
        return Encoding.Latin1.GetBytes(s);
    }

    /// <summary>Kestrel side: adds the block's headers to the response.</summary>
    public static void ApplyTo(IHeaderDictionary headers, ReadOnlySpan<byte> block)
    {
        while (!block.IsEmpty)
        {
            var nameLength = BinaryPrimitives.ReadInt32LittleEndian(block);
            var valueLength = BinaryPrimitives.ReadInt32LittleEndian(block[4..]);
            var name = Encoding.Latin1.GetString(block.Slice(8, nameLength));
            var value = Encoding.Latin1.GetString(block.Slice(8 + nameLength, valueLength));
            block = block[(8 + nameLength + valueLength)..];
            // Kestrel chunks by itself when there is no content-length; an app-provided
            // "transfer-encoding: chunked" would make it expect pre-chunked bytes.
            if (name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase) &&
                value.Equals("chunked", StringComparison.OrdinalIgnoreCase)) continue;
            headers.Append(name, value);
        }
    }
}
