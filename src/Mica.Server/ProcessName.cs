using System.Text;
using Mica.Server.Native;

namespace Mica.Server;

/// <summary>
/// <c>--process-name</c>: the name <c>ps</c>, <c>top</c> and <c>/proc/PID/comm</c> show (the kernel
/// keeps 15 bytes). Must be called on the process's main thread, whose name is the process's.
/// </summary>
public static class ProcessName
{
    public static void Set(string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name);
        var buffer = new byte[16];
        Array.Copy(bytes, buffer, Math.Min(bytes.Length, 15));
        if (Libc.prctl(Libc.PR_SET_NAME, buffer, 0, 0, 0) != 0)
            Log.Warning($"cannot set the process name to '{name}'");
    }

    /// <summary>A worker's name: the process name with its worker id, the id kept when shortened.</summary>
    public static string ForWorker(string name, int id)
    {
        var suffix = $"-w{id}";
        return (name.Length + suffix.Length <= 15 ? name : name[..Math.Max(0, 15 - suffix.Length)]) + suffix;
    }
}
