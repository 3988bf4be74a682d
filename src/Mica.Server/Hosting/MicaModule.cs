using System.Runtime.InteropServices;
using Mica.Server.EventLoop;
using Mica.Server.Python;
using Mica.Server.Wsgi;

namespace Mica.Server.Hosting;

/// <summary>
/// The built-in module <c>_mica</c>: what Python code in a worker can call in C#. <c>drain</c> is the
/// event loop's reader callback for the hand-off eventfd; the interface adapters add their own calls.
/// </summary>
internal static unsafe class MicaModule
{
    private static nint _definition;

    /// <summary>The ASGI worker's hand-off queue, drained by <c>_mica.drain()</c>.</summary>
    public static PythonLoop? Loop { get; set; }

    /// <summary>Before interpreter initialisation.</summary>
    public static void Register()
    {
        _definition = NativeModule.Define("_mica",
        [
            new("drain", (nint)(delegate* unmanaged<nint, nint, nint>)&Drain, NativeModule.MethNoArgs),
            RecordType.Function,
            .. LoopCalls.Functions,
            .. WsgiCalls.Functions,
        ]);
        NativeModule.Register("_mica", &Init);
    }

    [UnmanagedCallersOnly]
    private static nint Init() => NativeModule.Create(_definition);

    [UnmanagedCallersOnly]
    private static nint Drain(nint self, nint unused)
    {
        try
        {
            Loop?.Drain();
            Py.IncRef(Py.None);
            return Py.None;
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }
}
