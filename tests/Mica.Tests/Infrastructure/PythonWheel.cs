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

    /// <summary>
    /// A new virtualenv (Debian's python3 with <c>--system-site-packages</c>, so the frameworks are
    /// there) in <paramref name="parent"/>, with mica-server installed, and mica-server-granian too
    /// when <paramref name="granian"/>. Returns the virtualenv's folder.
    /// </summary>
    public static async Task<string> CreateVenvAsync(string parent, bool granian = false)
    {
        var wheels = await BuildAsync();
        var venv = Path.Combine(parent, "venv");
        Tool.Ok(await Tool.RunAsync(MicaProcess.Python, ["-m", "venv", "--system-site-packages", venv], TimeSpan.FromMinutes(2)));
        string[] install = granian ? [MicaServerWheel(wheels), GranianWheel(wheels)] : [MicaServerWheel(wheels)];
        Tool.Ok(await Tool.RunAsync(Path.Combine(venv, "bin", "pip"),
            ["install", "--no-index", "--disable-pip-version-check", "--no-warn-script-location", .. install], TimeSpan.FromMinutes(2)));
        return venv;
    }
}
