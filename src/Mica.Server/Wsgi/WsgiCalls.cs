using System.Runtime.InteropServices;
using Mica.Server.Python;

namespace Mica.Server.Wsgi;

/// <summary>
/// The <c>_mica</c> functions wsgi.py calls for each request. Each is an unmanaged entry point: it
/// catches everything and raises it in Python, so no C# exception crosses into the interpreter.
/// </summary>
internal static unsafe class WsgiCalls
{
    public static IEnumerable<NativeModule.Function> Functions =>
    [
        new("wsgi_read", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&Read, NativeModule.MethFastCall),
        new("wsgi_send", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&Send, NativeModule.MethFastCall),
        new("wsgi_send_file", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&SendFile, NativeModule.MethFastCall),
    ];

    /// <summary>wsgi_read(handle, size) → bytes</summary>
    [UnmanagedCallersOnly]
    private static nint Read(nint self, nint* args, nint nargs)
    {
        try
        {
            var exchange = Exchange(args, nargs, 2);
            return exchange.Read(Long(args[1]));
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>wsgi_send(handle, status, headers, body, more) → bool</summary>
    [UnmanagedCallersOnly]
    private static nint Send(nint self, nint* args, nint nargs)
    {
        try
        {
            var exchange = Exchange(args, nargs, 5);
            var more = Py.ObjectIsTrue(args[4]);
            if (more < 0) throw PythonException.Fetch();
            var ok = exchange.Send(args[1], args[2], args[3], more == 1);
            return PyRef.NewReference(ok ? Py.True : Py.False);
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>wsgi_send_file(handle, status, headers, fd, offset, count)</summary>
    [UnmanagedCallersOnly]
    private static nint SendFile(nint self, nint* args, nint nargs)
    {
        try
        {
            var exchange = Exchange(args, nargs, 6);
            exchange.SendFile(args[1], args[2], (int)Long(args[3]), Long(args[4]), Long(args[5]));
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    private static long Long(nint obj)
    {
        var value = Py.LongAsLong(obj);
        if (value == -1 && Py.ErrOccurred() != 0) throw PythonException.Fetch();
        return value;
    }

    private static WsgiExchange Exchange(nint* args, nint nargs, int expected) =>
        WsgiServer.Current?.Handles.Get(NativeModule.RequestHandle(args, nargs, expected))
            ?? throw new PythonError(Py.ExcRuntimeError, "this request has already finished");
}
