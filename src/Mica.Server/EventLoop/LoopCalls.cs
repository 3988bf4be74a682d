using System.Runtime.InteropServices;
using Mica.Server.Python;

namespace Mica.Server.EventLoop;

/// <summary>
/// The <c>_mica</c> functions asgi.py and rsgi.py call for each request. Each is an unmanaged entry point: it
/// catches everything and raises it in Python, so no C# exception crosses into the interpreter.
/// </summary>
internal static unsafe class LoopCalls
{
    public static IEnumerable<NativeModule.Function> Functions =>
    [
        new("send", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&Send, NativeModule.MethFastCall),
        new("receive", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&Receive, NativeModule.MethFastCall),
        new("wait_disconnect", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&WaitDisconnect, NativeModule.MethFastCall),
        new("send_file", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&SendFile, NativeModule.MethFastCall),
        new("finish", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&Finish, NativeModule.MethFastCall),
        new("ws_accept", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&WsAccept, NativeModule.MethFastCall),
        new("ws_receive", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&WsReceive, NativeModule.MethFastCall),
        new("ws_send", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&WsSend, NativeModule.MethFastCall),
        new("ws_close", (nint)(delegate* unmanaged<nint, nint*, nint, nint>)&WsClose, NativeModule.MethFastCall),
    ];

    /// <summary>send(handle, status, headers, body, more_body, future)</summary>
    [UnmanagedCallersOnly]
    private static nint Send(nint self, nint* args, nint nargs)
    {
        try
        {
            var exchange = Exchange(args, nargs, 6);
            var more = Py.ObjectIsTrue(args[4]);
            if (more < 0) throw PythonException.Fetch();
            exchange.Send(args[1], args[2], args[3], more == 1, args[5]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>send_file(handle, status, headers, path[, start, end])</summary>
    [UnmanagedCallersOnly]
    private static nint SendFile(nint self, nint* args, nint nargs)
    {
        try
        {
            var exchange = Exchange(args, nargs, nargs == 6 ? 6 : 4);
            var path = PyStr.ToManaged(args[3]);
            if (nargs == 4)
            {
                exchange.SendFile(args[1], args[2], path);
                return NativeModule.None();
            }
            var start = Py.LongAsLong(args[4]);
            var end = Py.LongAsLong(args[5]);
            if ((start == -1 || end == -1) && Py.ErrOccurred() != 0) throw PythonException.Fetch();
            exchange.SendFile(args[1], args[2], path, start, end);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>receive(handle, future)</summary>
    [UnmanagedCallersOnly]
    private static nint Receive(nint self, nint* args, nint nargs)
    {
        try
        {
            Exchange(args, nargs, 2).Receive(args[1]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>wait_disconnect(handle, future)</summary>
    [UnmanagedCallersOnly]
    private static nint WaitDisconnect(nint self, nint* args, nint nargs)
    {
        try
        {
            Exchange(args, nargs, 2).WaitDisconnect(args[1]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>finish(handle)</summary>
    [UnmanagedCallersOnly]
    private static nint Finish(nint self, nint* args, nint nargs)
    {
        try
        {
            Exchange(args, nargs, 1).Finish();
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>ws_accept(handle, subprotocol, headers, future)</summary>
    [UnmanagedCallersOnly]
    private static nint WsAccept(nint self, nint* args, nint nargs)
    {
        try
        {
            Exchange(args, nargs, 4).Accept(args[1], args[2], args[3]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>ws_receive(handle, future)</summary>
    [UnmanagedCallersOnly]
    private static nint WsReceive(nint self, nint* args, nint nargs)
    {
        try
        {
            Exchange(args, nargs, 2).WebSocket.Receive(args[1]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>ws_send(handle, data, future)</summary>
    [UnmanagedCallersOnly]
    private static nint WsSend(nint self, nint* args, nint nargs)
    {
        try
        {
            Exchange(args, nargs, 3).WebSocket.Send(args[1], args[2]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    /// <summary>ws_close(handle, code, reason, future)</summary>
    [UnmanagedCallersOnly]
    private static nint WsClose(nint self, nint* args, nint nargs)
    {
        try
        {
            var exchange = Exchange(args, nargs, 4);
            var code = Py.LongAsLong(args[1]);
            if (code == -1 && Py.ErrOccurred() != 0) throw PythonException.Fetch();
            if (!LoopWebSocket.IsSendableCloseCode(code))
                throw new PythonError(Py.ExcValueError, $"invalid websocket close code {code}: codes 1004-1006, 1015-2999 and beyond 4999 cannot be sent");
            exchange.WebSocket.Close((int)code, PyStr.ToManaged(args[2]), args[3]);
            return NativeModule.None();
        }
        catch (Exception e) { return NativeModule.RaiseFrom(e); }
    }

    private static LoopExchange Exchange(nint* args, nint nargs, int expected) =>
        LoopServer.Current?.Handles.Get(NativeModule.RequestHandle(args, nargs, expected))
            ?? throw new PythonError(Py.ExcRuntimeError, "this request has already finished");
}
