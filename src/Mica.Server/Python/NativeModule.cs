using System.Runtime.InteropServices;

namespace Mica.Server.Python;

/// <summary>
/// Builds a built-in Python module whose functions are C# <c>[UnmanagedCallersOnly]</c> methods.
/// The PyModuleDef and PyMethodDef tables live in native memory for the life of the process,
/// as CPython requires.
/// </summary>
internal static unsafe class NativeModule
{
    public const int MethVarargs = 0x1, MethNoArgs = 0x4, MethO = 0x8, MethFastCall = 0x80;

    /// <summary>One module-level function: a pointer to an unmanaged entry point and its METH_ flags.</summary>
    public readonly record struct Function(string Name, nint Entry, int Flags);

    [StructLayout(LayoutKind.Sequential)]
    private struct PyMethodDef
    {
        public byte* Name;
        public nint Method;
        public int Flags;
        public byte* Doc;
    }

    // PyModuleDef for CPython 3.x on 64-bit: PyModuleDef_Base (ob_refcnt, ob_type, m_init, m_index,
    // m_copy) then m_name, m_doc, m_size, m_methods, m_slots, m_traverse, m_clear, m_free.
    [StructLayout(LayoutKind.Sequential)]
    private struct PyModuleDef
    {
        public nint RefCount, Type, Init, Index, Copy;
        public byte* Name, Doc;
        public nint Size;
        public PyMethodDef* Methods;
        public nint Slots, Traverse, Clear, Free;
    }

    /// <summary>Allocates the module definition; pass the result to <see cref="Create"/> from the module's init function.</summary>
    public static nint Define(string name, ReadOnlySpan<Function> functions)
    {
        var methods = (PyMethodDef*)NativeMemory.AllocZeroed((nuint)(functions.Length + 1), (nuint)sizeof(PyMethodDef));
        for (var i = 0; i < functions.Length; i++)
        {
            methods[i].Name = PyStr.Utf8Z(functions[i].Name);
            methods[i].Method = functions[i].Entry;
            methods[i].Flags = functions[i].Flags;
        }
        var def = (PyModuleDef*)NativeMemory.AllocZeroed((nuint)sizeof(PyModuleDef));
        def->RefCount = 1;   // PyModuleDef_HEAD_INIT
        def->Name = PyStr.Utf8Z(name);
        def->Size = -1;
        def->Methods = methods;
        return (nint)def;
    }

    /// <summary>Registers the module's init function; must precede interpreter initialisation.</summary>
    public static void Register(string name, delegate* unmanaged<nint> init)
    {
        if (Py.ImportAppendInittab(PyStr.Utf8Z(name), init) != 0)
            throw new InvalidOperationException($"cannot register built-in module {name}");
    }

    public static nint Create(nint definition) => Py.ModuleCreate2((void*)definition, Py.ApiVersion);

    /// <summary>
    /// For the per-request entry points, whose first argument is the request's handle: checks the
    /// argument count and returns the handle.
    /// </summary>
    public static long RequestHandle(nint* args, nint nargs, int expected)
    {
        if (nargs != expected) throw new PythonError(Py.ExcTypeError, $"expected {expected} arguments, got {nargs}");
        var handle = Py.LongAsLong(args[0]);
        if (handle == -1 && Py.ErrOccurred() != 0) throw PythonException.Fetch();
        return handle;
    }

    /// <summary>A new reference to None, an entry point's usual result.</summary>
    public static nint None()
    {
        Py.IncRef(Py.None);
        return Py.None;
    }

    /// <summary>
    /// Turns a C# exception at an entry point into a Python RuntimeError, so that no C# exception
    /// ever unwinds into the interpreter. Returns NULL, which the entry point returns to Python.
    /// </summary>
    public static nint RaiseFrom(Exception e)
    {
        var (type, message) = e switch
        {
            PythonError pe => (pe.Type, pe.Message),
            // A Python error met while serving the call (e.g. a str where bytes belong): raised again
            // as its own type where it is a common one, so the app's traceback blames the app.
            PythonException { TypeName: "TypeError" } pe => (Py.ExcTypeError, pe.Message["TypeError: ".Length..]),
            PythonException { TypeName: "ValueError" } pe => (Py.ExcValueError, pe.Message["ValueError: ".Length..]),
            PythonException pe => (Py.ExcRuntimeError, pe.Message),
            _ => (Py.ExcRuntimeError, $"mica internal error: {e.GetType().Name}: {e.Message}"),
        };
        // PyErr_SetString copies the message, so a temporary NUL-terminated buffer is enough.
        var utf8 = System.Text.Encoding.UTF8.GetBytes(message + "\0");
        fixed (byte* p = utf8) Py.ErrSetString(type, p);
        return 0;
    }
}

/// <summary>
/// An error an entry point raises deliberately as a given Python exception type (e.g. TypeError for
/// a malformed ASGI message).
/// </summary>
internal sealed class PythonError(nint type, string message) : Exception(message)
{
    public nint Type { get; } = type;
}
