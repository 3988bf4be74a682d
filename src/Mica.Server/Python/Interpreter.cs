using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Mica.Server.Native;

namespace Mica.Server.Python;

/// <summary>What one Python interpreter told us about itself (see <see cref="Interpreter.Probe"/>).</summary>
public sealed record PythonInstall(string Executable, string Library, string Version);

/// <summary>
/// Finds a Python (the master does this once, by asking the interpreter in a subprocess), loads its
/// libpython into a worker and initialises it, on the thread that will own the event loop (Python's
/// "main thread").
/// </summary>
public static unsafe class Interpreter
{
    // Asked of the interpreter once: where its shared library is, and its real executable path
    // (a virtualenv's python, so that initialising with it as program name finds pyvenv.cfg).
    private const string ProbeScript = """
        import json, os, sys, sysconfig
        g = sysconfig.get_config_var
        libdir = g("LIBDIR") or ""
        names = [n for n in (g("INSTSONAME"), g("LDLIBRARY")) if n and ".so" in n]
        libs = [os.path.join(libdir, n) for n in names] + [os.path.join(g("LIBPL") or "", n) for n in names]
        found = next((p for p in libs if os.path.exists(p)), None)
        print(json.dumps({"executable": sys.executable, "library": found,
                          "version": "%d.%d" % sys.version_info[:2]}))
        """;

    /// <summary>
    /// Which interpreter to use: the one asked for, else the active virtualenv's, else python3 on PATH.
    /// </summary>
    public static string Choose(string? requested)
    {
        if (!string.IsNullOrEmpty(requested)) return requested;
        var venv = Environment.GetEnvironmentVariable("VIRTUAL_ENV");
        if (!string.IsNullOrEmpty(venv) && File.Exists(Path.Combine(venv, "bin", "python")))
            return Path.Combine(venv, "bin", "python");
        return "python3";
    }

    public static PythonInstall Probe(string python)
    {
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(ProbeScript);
        Process process;
        try { process = Process.Start(psi)!; }
        catch (Exception e) { throw new StartupException($"cannot run Python interpreter '{python}': {e.Message}"); }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEnd();
            var stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
                throw new StartupException($"Python interpreter '{python}' failed to describe itself: {stderr.Trim()}");
            using var json = JsonDocument.Parse(stdout);
            var root = json.RootElement;
            var library = root.GetProperty("library").GetString()
                ?? throw new StartupException($"Python interpreter '{python}' has no shared libpython (it was built without --enable-shared); Mica needs one to embed it");
            return new PythonInstall(root.GetProperty("executable").GetString()!, library, root.GetProperty("version").GetString()!);
        }
    }

    /// <summary>
    /// Loads libpython and initialises the interpreter on the calling thread, which keeps the GIL.
    /// Built-in modules must have been registered with <see cref="NativeModule"/> before this.
    /// </summary>
    internal static void Initialize(PythonInstall install, Action registerBuiltins)
    {
        // RTLD_GLOBAL: C extension modules (math, _asyncio, uvloop) resolve Python's symbols from it.
        var lib = Libc.dlopen(install.Library, Libc.RTLD_NOW | Libc.RTLD_GLOBAL);
        if (lib == 0)
            throw new StartupException($"cannot load {install.Library}: {Marshal.PtrToStringUTF8(Libc.dlerror())}");
        Py.Bind(lib);
        registerBuiltins();

        // The program name decides sys.prefix and site-packages (a venv's python finds its pyvenv.cfg).
        // Py_SetProgramName keeps the pointer, so the decoded string is never freed.
        var name = Py.DecodeLocale(PyStr.Utf8Z(install.Executable), null);
        if (name == 0) throw new StartupException($"cannot decode interpreter path '{install.Executable}'");
        Py.SetProgramName(name);
        // 0: Python installs no signal handlers; the C# side owns signals.
        Py.InitializeEx(0);
    }

    /// <summary>Compiles and imports one of Mica's own Python modules shipped inside this assembly.</summary>
    internal static PyRef ImportEmbedded(string moduleName, string resourceName)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(resourceName)
            ?? throw new InvalidOperationException($"missing embedded resource {resourceName}");
        using var reader = new StreamReader(stream);
        var source = reader.ReadToEnd();
        var fileName = $"<mica>/{resourceName}";
        using var code = PyRef.Steal(Py.CompileString(PyStr.Utf8Z(source), PyStr.Utf8Z(fileName), Py.FileInput));
        return PyRef.Steal(Py.ImportExecCodeModuleEx(PyStr.Utf8Z(moduleName), code.Handle, PyStr.Utf8Z(fileName)));
    }
}

/// <summary>A start-up failure with a message meant for the user, not a stack trace.</summary>
public sealed class StartupException(string message) : Exception(message);
