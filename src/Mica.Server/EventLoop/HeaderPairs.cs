using Mica.Server.Python;
using Microsoft.AspNetCore.Http;

namespace Mica.Server.EventLoop;

/// <summary>
/// The request's headers as the Python list of (name, value) pairs both async interfaces start
/// from: ASGI hands it over as bytes, RSGI wraps it (as str) in its Headers record. Names come from
/// a cache of lowercase names. Kestrel groups values by header name, so the order of different names
/// may differ from the wire (the ASGI spec allows it: "order of header names is not important");
/// the order of one name's values is kept, each value its own pair.
/// </summary>
internal static unsafe class HeaderPairs
{
    /// <param name="value">Makes a value's Python object (called through a static lambda: no allocation).</param>
    public static PyRef Build(IHeaderDictionary headers, PyObjectCache names, Func<string, PyRef> value)
    {
        using var list = PyRef.Steal(Py.ListNew(0));
        foreach (var (name, values) in headers)
        {
            var nameObj = names.Get(name);
            foreach (var text in values)
            {
                using var tuple = PyRef.Steal(Py.TupleNew(2));
                Py.IncRef(nameObj);
                Py.TupleSetItem(tuple.Handle, 0, nameObj);
                var item = value(text ?? "");
                Py.TupleSetItem(tuple.Handle, 1, item.Release());
                if (Py.ListAppend(list.Handle, tuple.Handle) != 0) throw PythonException.Fetch();
            }
        }
        return PyRef.Borrow(list.Handle);
    }
}
