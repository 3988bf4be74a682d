namespace Mica.Server.Python;

/// <summary>
/// A Python exception surfaced in C#: the exception type's name, its message, and the traceback
/// formatted exactly as Python would print it.
/// </summary>
internal sealed class PythonException : Exception
{
    public string TypeName { get; }
    public string Traceback { get; }

    public PythonException(string typeName, string message, string traceback)
        : base(message.Length == 0 ? typeName : $"{typeName}: {message}")
    {
        TypeName = typeName;
        Traceback = traceback;
    }

    /// <summary>Takes the pending Python error (clearing it) and formats it. GIL held.</summary>
    public static unsafe PythonException Fetch()
    {
        nint type, value, tb;
        Py.ErrFetch(&type, &value, &tb);
        if (type == 0)
            return new PythonException("SystemError", "a Python C API call failed without setting an error", "");
        Py.ErrNormalizeException(&type, &value, &tb);
        try
        {
            var typeName = PyStr.OfAttr(type, "__name__") ?? "Exception";
            var message = value == 0 ? "" : PyStr.Of(value) ?? "";
            var traceback = FormatTraceback(type, value, tb) ?? $"{typeName}: {message}\n";
            return new PythonException(typeName, message, traceback);
        }
        finally
        {
            Py.DecRef(type);
            if (value != 0) Py.DecRef(value);
            if (tb != 0) Py.DecRef(tb);
        }
    }

    /// <summary>traceback.format_exception(type, value, tb) joined; null if even that fails.</summary>
    private static unsafe string? FormatTraceback(nint type, nint value, nint tb)
    {
        var module = Py.ImportModule(PyStr.Utf8Z("traceback"));
        if (module == 0) { Py.ErrClear(); return null; }
        try
        {
            var format = Py.GetAttrString(module, PyStr.Utf8Z("format_exception"));
            if (format == 0) { Py.ErrClear(); return null; }
            try
            {
                var args = stackalloc nint[3] { type, value == 0 ? Py.None : value, tb == 0 ? Py.None : tb };
                var lines = Py.Vectorcall(format, args, 3, 0);
                if (lines == 0) { Py.ErrClear(); return null; }
                try { return PyStr.JoinLines(lines); }
                finally { Py.DecRef(lines); }
            }
            finally { Py.DecRef(format); }
        }
        finally { Py.DecRef(module); }
    }
}
