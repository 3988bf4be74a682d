using System.Runtime.InteropServices;

namespace Mica.Server.Python;

/// <summary>
/// The part of the CPython C API Mica uses, as unmanaged function pointers resolved once from the
/// libpython that <see cref="Interpreter"/> loaded. Every pointer here is an exported function of the
/// stable ABI or of the 3.11+ full API (macros and static inline functions are not exported, so none
/// of those appear). A <c>nint</c> parameter or result is a <c>PyObject*</c> unless named otherwise.
/// </summary>
internal static unsafe class Py
{
    public const int FileInput = 257;          // Py_file_input
    public const int ApiVersion = 1013;        // PYTHON_API_VERSION
    public const int TwoByteKind = 2;          // PyUnicode_2BYTE_KIND: UTF-16 code units without surrogates

    // Interpreter life.
    public static delegate* unmanaged<byte*, nint*, nint> DecodeLocale;
    public static delegate* unmanaged<nint, void> SetProgramName;
    public static delegate* unmanaged<int, void> InitializeEx;

    // Threads and the GIL. A thread state is a PyThreadState*; a GIL state is PyGILState_STATE.
    public static delegate* unmanaged<int> GILStateEnsure;
    public static delegate* unmanaged<int, void> GILStateRelease;
    public static delegate* unmanaged<nint> EvalSaveThread;
    public static delegate* unmanaged<nint, void> EvalRestoreThread;

    // References and objects.
    public static delegate* unmanaged<nint, void> IncRef;
    public static delegate* unmanaged<nint, void> DecRef;
    public static delegate* unmanaged<nint, byte*, nint> GetAttrString;
    public static delegate* unmanaged<nint, nint*, nuint, nint, nint> Vectorcall;
    public static delegate* unmanaged<nint, nint> ObjectStr;
    public static delegate* unmanaged<nint, nint> GetIter;
    public static delegate* unmanaged<nint, nint> IterNext;
    public static delegate* unmanaged<nint, nint, nint> SequenceGetItem;
    public static delegate* unmanaged<nint, nint> SequenceSize;

    // Types (see RecordType). A type spec is a PyType_Spec*; the free function is PyObject_Free.
    public static delegate* unmanaged<void*, nint> TypeFromSpec;
    public static delegate* unmanaged<nint, nint, nint> TypeGenericAlloc;
    public static delegate* unmanaged<nint, void> ObjectFree;

    // Modules and code.
    public static delegate* unmanaged<byte*, delegate* unmanaged<nint>, int> ImportAppendInittab;
    public static delegate* unmanaged<void*, int, nint> ModuleCreate2;
    public static delegate* unmanaged<byte*, nint> ImportModule;
    public static delegate* unmanaged<byte*, byte*, int, nint> CompileString;
    public static delegate* unmanaged<byte*, nint, byte*, nint> ImportExecCodeModuleEx;

    // Containers.
    public static delegate* unmanaged<nint, nint> TupleNew;
    public static delegate* unmanaged<nint, nint, nint, int> TupleSetItem;
    public static delegate* unmanaged<nint, nint> ListNew;
    public static delegate* unmanaged<nint, nint, int> ListAppend;
    public static delegate* unmanaged<nint> DictNew;
    public static delegate* unmanaged<nint, nint> DictCopy;
    public static delegate* unmanaged<nint, int> ObjectIsTrue;
    public static delegate* unmanaged<nint, nint, nint, int> DictSetItem;

    // Scalars.
    public static delegate* unmanaged<byte*, nint, nint> BytesFromStringAndSize;
    public static delegate* unmanaged<nint, byte**, nint*, int> BytesAsStringAndSize;
    public static delegate* unmanaged<byte*, nint, nint> UnicodeFromStringAndSize;
    public static delegate* unmanaged<byte*, nint, byte*, nint> UnicodeDecodeUTF8;
    public static delegate* unmanaged<byte*, nint, byte*, nint> UnicodeDecodeLatin1;
    public static delegate* unmanaged<nint, nint> UnicodeGetLength;
    public static delegate* unmanaged<int, void*, nint, nint> UnicodeFromKindAndData;
    public static delegate* unmanaged<nint, nint*, byte*> UnicodeAsUTF8AndSize;
    public static delegate* unmanaged<byte*, nint> UnicodeInternFromString;
    public static delegate* unmanaged<long, nint> LongFromLong;
    public static delegate* unmanaged<nint, long> LongAsLong;

    // Errors.
    public static delegate* unmanaged<nint> ErrOccurred;
    public static delegate* unmanaged<nint*, nint*, nint*, void> ErrFetch;
    public static delegate* unmanaged<nint*, nint*, nint*, void> ErrNormalizeException;
    public static delegate* unmanaged<nint, byte*, void> ErrSetString;
    public static delegate* unmanaged<void> ErrClear;

    // Singletons and exception types (addresses of exported data).
    public static nint None, True, False;
    public static nint ExcRuntimeError, ExcTypeError, ExcValueError, ExcOSError;

    internal static void Bind(nint lib)
    {
        nint F(string name) => NativeLibrary.GetExport(lib, name);
        nint Type(string name) => *(nint*)F(name);   // PyExc_* are PyObject* variables

        DecodeLocale = (delegate* unmanaged<byte*, nint*, nint>)F("Py_DecodeLocale");
        SetProgramName = (delegate* unmanaged<nint, void>)F("Py_SetProgramName");
        InitializeEx = (delegate* unmanaged<int, void>)F("Py_InitializeEx");

        GILStateEnsure = (delegate* unmanaged<int>)F("PyGILState_Ensure");
        GILStateRelease = (delegate* unmanaged<int, void>)F("PyGILState_Release");
        EvalSaveThread = (delegate* unmanaged<nint>)F("PyEval_SaveThread");
        EvalRestoreThread = (delegate* unmanaged<nint, void>)F("PyEval_RestoreThread");

        IncRef = (delegate* unmanaged<nint, void>)F("Py_IncRef");
        DecRef = (delegate* unmanaged<nint, void>)F("Py_DecRef");
        GetAttrString = (delegate* unmanaged<nint, byte*, nint>)F("PyObject_GetAttrString");
        Vectorcall = (delegate* unmanaged<nint, nint*, nuint, nint, nint>)F("PyObject_Vectorcall");
        ObjectStr = (delegate* unmanaged<nint, nint>)F("PyObject_Str");
        GetIter = (delegate* unmanaged<nint, nint>)F("PyObject_GetIter");
        IterNext = (delegate* unmanaged<nint, nint>)F("PyIter_Next");
        SequenceGetItem = (delegate* unmanaged<nint, nint, nint>)F("PySequence_GetItem");
        SequenceSize = (delegate* unmanaged<nint, nint>)F("PySequence_Size");

        TypeFromSpec = (delegate* unmanaged<void*, nint>)F("PyType_FromSpec");
        TypeGenericAlloc = (delegate* unmanaged<nint, nint, nint>)F("PyType_GenericAlloc");
        ObjectFree = (delegate* unmanaged<nint, void>)F("PyObject_Free");

        ImportAppendInittab = (delegate* unmanaged<byte*, delegate* unmanaged<nint>, int>)F("PyImport_AppendInittab");
        ModuleCreate2 = (delegate* unmanaged<void*, int, nint>)F("PyModule_Create2");
        ImportModule = (delegate* unmanaged<byte*, nint>)F("PyImport_ImportModule");
        CompileString = (delegate* unmanaged<byte*, byte*, int, nint>)F("Py_CompileString");
        ImportExecCodeModuleEx = (delegate* unmanaged<byte*, nint, byte*, nint>)F("PyImport_ExecCodeModuleEx");

        TupleNew = (delegate* unmanaged<nint, nint>)F("PyTuple_New");
        TupleSetItem = (delegate* unmanaged<nint, nint, nint, int>)F("PyTuple_SetItem");
        ListNew = (delegate* unmanaged<nint, nint>)F("PyList_New");
        ListAppend = (delegate* unmanaged<nint, nint, int>)F("PyList_Append");
        DictNew = (delegate* unmanaged<nint>)F("PyDict_New");
        DictCopy = (delegate* unmanaged<nint, nint>)F("PyDict_Copy");
        ObjectIsTrue = (delegate* unmanaged<nint, int>)F("PyObject_IsTrue");
        DictSetItem = (delegate* unmanaged<nint, nint, nint, int>)F("PyDict_SetItem");

        BytesFromStringAndSize = (delegate* unmanaged<byte*, nint, nint>)F("PyBytes_FromStringAndSize");
        BytesAsStringAndSize = (delegate* unmanaged<nint, byte**, nint*, int>)F("PyBytes_AsStringAndSize");
        UnicodeFromStringAndSize = (delegate* unmanaged<byte*, nint, nint>)F("PyUnicode_FromStringAndSize");
        UnicodeDecodeUTF8 = (delegate* unmanaged<byte*, nint, byte*, nint>)F("PyUnicode_DecodeUTF8");
        UnicodeDecodeLatin1 = (delegate* unmanaged<byte*, nint, byte*, nint>)F("PyUnicode_DecodeLatin1");
        UnicodeGetLength = (delegate* unmanaged<nint, nint>)F("PyUnicode_GetLength");
        UnicodeFromKindAndData = (delegate* unmanaged<int, void*, nint, nint>)F("PyUnicode_FromKindAndData");
        UnicodeAsUTF8AndSize = (delegate* unmanaged<nint, nint*, byte*>)F("PyUnicode_AsUTF8AndSize");
        UnicodeInternFromString = (delegate* unmanaged<byte*, nint>)F("PyUnicode_InternFromString");
        LongFromLong = (delegate* unmanaged<long, nint>)F("PyLong_FromLong");
        LongAsLong = (delegate* unmanaged<nint, long>)F("PyLong_AsLong");

        ErrOccurred = (delegate* unmanaged<nint>)F("PyErr_Occurred");
        ErrFetch = (delegate* unmanaged<nint*, nint*, nint*, void>)F("PyErr_Fetch");
        ErrNormalizeException = (delegate* unmanaged<nint*, nint*, nint*, void>)F("PyErr_NormalizeException");
        ErrSetString = (delegate* unmanaged<nint, byte*, void>)F("PyErr_SetString");
        ErrClear = (delegate* unmanaged<void>)F("PyErr_Clear");

        None = F("_Py_NoneStruct");
        True = F("_Py_TrueStruct");
        False = F("_Py_FalseStruct");
        ExcRuntimeError = Type("PyExc_RuntimeError");
        ExcTypeError = Type("PyExc_TypeError");
        ExcValueError = Type("PyExc_ValueError");
        ExcOSError = Type("PyExc_OSError");
    }
}
