using System.Security.Cryptography;
using System.Text;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// The wheels scripts/build-wheel makes (mica-server, mica-server-granian), and virtualenvs they are
/// installed into. Publishing the executable takes a minute, so the wheels are kept in
/// artifacts/test-wheels/KEY, KEY being a hash of every source they are built from: a run after no
/// change reuses them, a change to any source builds them anew.
/// </summary>
public static class PythonWheel
{
    private static readonly SemaphoreSlim BuildLock = new(1, 1);
    private static string? _built;

    /// <summary>Inputs of the wheels, relative to the repository: folders (every file in them) and files.</summary>
    private static readonly string[] Sources = ["src", "python", "Directory.Build.props", "scripts/publish", "scripts/build-wheel"];

    public static string MicaServerWheel(string dir) => Directory.GetFiles(dir, "mica_server-*.whl").Single();
    public static string GranianWheel(string dir) => Directory.GetFiles(dir, "mica_server_granian-*.whl").Single();

    /// <summary>The folder holding both wheels, built (once per run, and only when a source changed).</summary>
    public static async Task<string> BuildAsync()
    {
        await BuildLock.WaitAsync();
        try
        {
            if (_built is not null) return _built;
            var cache = Path.Combine(MicaProcess.RepoRoot, "artifacts", "test-wheels");
            var dir = Path.Combine(cache, SourcesKey());
            if (!Directory.Exists(dir))
            {
                var partial = dir + ".partial";
                if (Directory.Exists(partial)) Directory.Delete(partial, recursive: true);
                Tool.Ok(await Tool.RunAsync(Path.Combine(MicaProcess.RepoRoot, "scripts", "build-wheel"), [partial], TimeSpan.FromMinutes(8)));
                if (Directory.Exists(cache))
                    foreach (var old in Directory.GetDirectories(cache)) if (old != partial) Directory.Delete(old, recursive: true);
                Directory.Move(partial, dir);
            }
            return _built = dir;
        }
        finally
        {
            BuildLock.Release();
        }
    }

    private static string SourcesKey()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var root = MicaProcess.RepoRoot;
        var files = Sources.SelectMany(s => Path.Combine(root, s) is var path && Directory.Exists(path)
                ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                : [path])
            .Where(f => !f.Contains("__pycache__", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(Path.GetRelativePath(root, file) + "\0"));
            hash.AppendData(File.ReadAllBytes(file));
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }

    private static readonly SemaphoreSlim VenvLock = new(1, 1);
    private static readonly Dictionary<bool, string> Venvs = [];

    /// <summary>
    /// A virtualenv made for this test run (Debian's python3 with <c>--system-site-packages</c>, so the
    /// frameworks are there) with mica-server installed, and mica-server-granian too when
    /// <paramref name="granian"/>; one of each kind per run, shared by the tests, which only read it.
    /// Returns its folder.
    /// </summary>
    public static async Task<string> VenvAsync(bool granian = false)
    {
        var wheels = await BuildAsync();
        await VenvLock.WaitAsync();
        try
        {
            if (Venvs.TryGetValue(granian, out var existing)) return existing;
            var parent = Master.TempDir();
            AppDomain.CurrentDomain.ProcessExit += (_, _) => parent.Delete(recursive: true);
            var venv = Path.Combine(parent.FullName, "venv");
            Tool.Ok(await Tool.RunAsync(MicaProcess.Python, ["-m", "venv", "--system-site-packages", venv], TimeSpan.FromMinutes(2)));
            string[] install = granian ? [MicaServerWheel(wheels), GranianWheel(wheels)] : [MicaServerWheel(wheels)];
            Tool.Ok(await Tool.RunAsync(Path.Combine(venv, "bin", "pip"),
                ["install", "--no-index", "--disable-pip-version-check", "--no-warn-script-location", .. install], TimeSpan.FromMinutes(2)));
            return Venvs[granian] = venv;
        }
        finally
        {
            VenvLock.Release();
        }
    }
}
