using System.Runtime.InteropServices;

namespace Mica.Server.Python;

/// <summary>
/// A Python type whose instances C# fills in directly: a fixed set of object fields, read as
/// attributes, and no Python code run to create one. An instance costs one allocation, where a
/// Python class would cost a call of its <c>__init__</c>, per request. Methods, if any, are plain
/// Python functions the interface module sets on the type afterwards.
/// </summary>
internal sealed unsafe class RecordType
{
    // PyType_Spec, PyType_Slot and PyMemberDef, as CPython 3.x lays them out on 64-bit.
    [StructLayout(LayoutKind.Sequential)]
    private struct TypeSpec
    {
        public byte* Name;
        public int BasicSize, ItemSize;
        public uint Flags;
        public TypeSlot* Slots;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TypeSlot
    {
        public int Slot;
        public nint Function;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MemberDef
    {
        public byte* Name;
        public int Type;
        public nint Offset;
        public int Flags;
        public byte* Doc;
    }

    private const int HeaderSize = 16;                 // ob_refcnt, ob_type
    private const int TpDealloc = 52, TpDoc = 56, TpMembers = 72;
    private const int ObjectField = 16;                // Py_T_OBJECT_EX: AttributeError while unset
    private const int ReadOnly = 1;
    private const uint DefaultFlags = 1u << 18;        // Py_TPFLAGS_DEFAULT (HAVE_VERSION_TAG)

    /// <summary>Each record type's field count, for the shared deallocator. Written at start-up only.</summary>
    private static readonly Dictionary<nint, int> FieldCounts = [];
    private static readonly Dictionary<string, RecordType> ByName = [];

    /// <summary><c>_mica.record_type(qualified_name, doc, fields, writable)</c>: how an interface module declares one.</summary>
    public static NativeModule.Function Function =>
        new("record_type", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&Declare, NativeModule.MethFastCall);

    /// <summary>A type an interface module declared, by its qualified name.</summary>
    public static RecordType Named(string qualifiedName) =>
        ByName.TryGetValue(qualifiedName, out var type) ? type : throw new InvalidOperationException($"record type {qualifiedName} was not declared");

    /// <summary>The type object (owned for the worker's life).</summary>
    public nint Type { get; }
    public int FieldCount => _fields.Length;
    private readonly string[] _fields;

    /// <summary>A field's position, for <see cref="New"/>.</summary>
    public int IndexOf(string field) =>
        Array.IndexOf(_fields, field) is >= 0 and var i ? i : throw new InvalidOperationException($"record type has no field {field}");

    /// <param name="qualifiedName">"module.Name", as Python shows it.</param>
    /// <param name="writable">Whether Python code may assign the fields (the interface module's own state); else they are read-only.</param>
    private RecordType(string qualifiedName, string doc, string[] fields, bool writable)
    {
        _fields = fields;
        // The definitions must outlive the type: allocated once, never freed.
        var members = (MemberDef*)NativeMemory.AllocZeroed((nuint)(fields.Length + 1), (nuint)sizeof(MemberDef));
        for (var i = 0; i < fields.Length; i++)
        {
            members[i].Name = PyStr.Utf8Z(fields[i]);
            members[i].Type = ObjectField;
            members[i].Offset = HeaderSize + i * sizeof(nint);
            members[i].Flags = writable ? 0 : ReadOnly;
        }
        var slots = (TypeSlot*)NativeMemory.AllocZeroed(4, (nuint)sizeof(TypeSlot));
        slots[0] = new TypeSlot { Slot = TpDealloc, Function = (nint)(delegate* unmanaged<nint, void>)&Dealloc };
        slots[1] = new TypeSlot { Slot = TpMembers, Function = (nint)members };
        slots[2] = new TypeSlot { Slot = TpDoc, Function = (nint)PyStr.Utf8Z(doc) };
        var spec = (TypeSpec*)NativeMemory.AllocZeroed((nuint)sizeof(TypeSpec));
        spec->Name = PyStr.Utf8Z(qualifiedName);
        spec->BasicSize = HeaderSize + fields.Length * sizeof(nint);
        spec->Flags = DefaultFlags;
        spec->Slots = slots;
        Type = PyRef.Check(Py.TypeFromSpec(spec));
        FieldCounts[Type] = fields.Length;
    }

    /// <summary>A new instance; <paramref name="values"/> are borrowed (the record takes its own references), in field order.</summary>
    public PyRef New(ReadOnlySpan<nint> values)
    {
        if (values.Length != FieldCount) throw new ArgumentException($"expected {FieldCount} values, got {values.Length}");
        var obj = PyRef.Check(Py.TypeGenericAlloc(Type, 0));
        var fields = (nint*)(obj + HeaderSize);
        for (var i = 0; i < values.Length; i++)
        {
            Py.IncRef(values[i]);
            fields[i] = values[i];
        }
        return PyRef.Steal(obj);
    }

    [UnmanagedCallersOnly]
    private static nint Declare(nint self, nint* args, nint nargs)
    {
        try
        {
            if (nargs != 4) throw new PythonError(Py.ExcTypeError, $"record_type() takes 4 arguments, got {nargs}");
            var name = PyStr.ToManaged(args[0]);
            var doc = PyStr.ToManaged(args[1]);
            var count = Py.SequenceSize(args[2]);
            if (count < 0) throw PythonException.Fetch();
            var fields = new string[count];
            for (var i = 0; i < count; i++)
            {
                using var field = PyRef.Steal(Py.SequenceGetItem(args[2], i));
                fields[i] = PyStr.ToManaged(field.Handle);
            }
            var writable = Py.ObjectIsTrue(args[3]);
            if (writable < 0) throw PythonException.Fetch();
            if (ByName.ContainsKey(name)) throw new PythonError(Py.ExcRuntimeError, $"record type {name} is already declared");
            var type = new RecordType(name, doc, fields, writable == 1);
            ByName[name] = type;
            return PyRef.NewReference(type.Type);
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>tp_dealloc: drops the fields, frees the object, and drops the instance's reference to its (heap) type.</summary>
    [UnmanagedCallersOnly]
    private static void Dealloc(nint self)
    {
        var type = *(nint*)(self + sizeof(nint));
        var fields = (nint*)(self + HeaderSize);
        var count = FieldCounts[type];
        for (var i = 0; i < count; i++)
        {
            var field = fields[i];
            fields[i] = 0;
            if (field != 0) Py.DecRef(field);
        }
        Py.ObjectFree(self);
        Py.DecRef(type);
    }
}
