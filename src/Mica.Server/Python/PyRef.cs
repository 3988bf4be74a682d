namespace Mica.Server.Python;

/// <summary>
/// An owned (strong) reference to a Python object: disposing it drops the reference. Creating one
/// from a NULL result raises the pending Python error as a <see cref="PythonException"/>, so every
/// C API call that returns a new reference is checked by wrapping it. Only use it with the GIL held.
///
/// It is a struct (no allocation per reference on the hot path), which makes copies dangerous: a
/// copy disposed after the original was released drops the reference twice. Hence
/// <see cref="PyRefOwnership.Release"/> takes the reference by <c>ref</c>: the compiler refuses it on
/// a <c>using var</c> (readonly) local, and never write <c>using (existingLocal)</c>, which disposes a copy.
/// </summary>
internal unsafe struct PyRef : IDisposable
{
    public nint Handle { get; internal set; }

    private PyRef(nint handle) => Handle = handle;

    /// <summary>Takes ownership of a new reference returned by the C API; NULL means an error is set.</summary>
    public static PyRef Steal(nint handle) =>
        handle == 0 ? throw PythonException.Fetch() : new PyRef(handle);

    /// <summary>A new reference returned by the C API, to keep raw (e.g. for the worker's life); NULL raises.</summary>
    public static nint Check(nint handle) => handle == 0 ? throw PythonException.Fetch() : handle;

    /// <summary>A new raw reference to a borrowed object, to keep or to give to a C API that steals it.</summary>
    public static nint NewReference(nint borrowed)
    {
        Py.IncRef(borrowed);
        return borrowed;
    }

    /// <summary>Takes a new reference to a borrowed object.</summary>
    public static PyRef Borrow(nint handle)
    {
        Py.IncRef(handle);
        return new PyRef(handle);
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

internal static class PyRefOwnership
{
    /// <summary>Hands the reference over to the caller (e.g. to a C API that steals it).</summary>
    public static nint Release(this ref PyRef reference)
    {
        var handle = reference.Handle;
        reference.Handle = 0;
        return handle;
    }
}
