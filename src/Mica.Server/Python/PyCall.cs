namespace Mica.Server.Python;

/// <summary>Calls by name, for the cold paths (start-up, shutdown). The hot path keeps function objects.</summary>
internal static unsafe class PyCall
{
    public static PyRef Method(nint target, string name, params ReadOnlySpan<nint> args)
    {
        using var function = PyRef.Steal(Py.GetAttrString(target, PyStr.Utf8Z(name)));
        return Call(function.Handle, args);
    }

    public static PyRef Call(nint function, params ReadOnlySpan<nint> args)
    {
        fixed (nint* p = args)
            return PyRef.Steal(Py.Vectorcall(function, p, (nuint)args.Length, 0));
    }
}
