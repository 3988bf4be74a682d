namespace Mica.Server.Python;

/// <summary>
/// Python objects for strings that recur from request to request (methods, header names), made
/// once and kept for the worker's life. Bounded, so that a client inventing names cannot grow it
/// forever: past the bound an object is made for one use and dropped at <see cref="ReleaseTransient"/>.
/// Python thread only.
/// </summary>
internal sealed unsafe class PyObjectCache(int capacity, Func<string, PyRef> create)
{
    private readonly Dictionary<string, nint> _objects = new(StringComparer.Ordinal);
    private readonly List<nint> _transient = [];

    /// <summary>A borrowed reference, valid until <see cref="ReleaseTransient"/>.</summary>
    public nint Get(string key)
    {
        if (_objects.TryGetValue(key, out var cached)) return cached;
        var made = create(key);
        var obj = made.Release();
        if (_objects.Count < capacity) _objects[key] = obj;
        else _transient.Add(obj);
        return obj;
    }

    /// <summary>Once the objects given out are referenced elsewhere (the scope is built): drops the one-off ones.</summary>
    public void ReleaseTransient()
    {
        foreach (var o in _transient) Py.DecRef(o);
        _transient.Clear();
    }
}
