namespace Mica.Server.Python;

/// <summary>
/// An owned (strong) reference to a Python object: disposing it drops the reference. Creating one
/// from a NULL result raises the pending Python error as a <see cref="PythonException"/>, so every
/// C API call that returns a new reference is checked by wrapping it. Only use it with the GIL held.
/// </summary>
internal unsafe struct PyRef : IDisposable
{
    public nint Handle { get; private set; }

    private PyRef(nint handle) => Handle = handle;

    /// <summary>Takes ownership of a new reference returned by the C API; NULL means an error is set.</summary>
    public static PyRef Steal(nint handle) =>
        handle == 0 ? throw PythonException.Fetch() : new PyRef(handle);

    /// <summary>Takes a new reference to a borrowed object.</summary>
    public static PyRef Borrow(nint handle)
    {
        Py.IncRef(handle);
        return new PyRef(handle);
    }

    /// <summary>Hands the reference over to the caller (e.g. to a C API that steals it).</summary>
    public nint Release()
    {
        var h = Handle;
        Handle = 0;
        return h;
    }

    public void Dispose()
    {
        if (Handle != 0)
        {
            Py.DecRef(Handle);
            Handle = 0;
        }
    }
}
