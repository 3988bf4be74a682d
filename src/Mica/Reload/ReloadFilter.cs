using System.Text.RegularExpressions;

namespace Mica.Reload;

/// <summary>
/// Which file changes trigger a reload. By default only Python sources and extension modules
/// (<c>*.py</c>, <c>*.pyx</c>, <c>*.pyd</c>, <c>*.so</c>); never anything under a VCS, cache,
/// virtualenv or <c>node_modules</c> directory, nor editor swap/backup files. On top of that, as in
/// Granian: <c>--reload-ignore-dirs</c> (directory names), <c>--reload-ignore-patterns</c> (regular
/// expressions matched against file and directory names) and <c>--reload-ignore-paths</c> (paths,
/// and everything below them).
/// </summary>
internal sealed class ReloadFilter
{
    private static readonly string[] SourceExtensions = [".py", ".pyx", ".pyd", ".so"];

    private static readonly string[] DefaultIgnoredDirectories =
    [
        "__pycache__", ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
        ".ruff_cache", ".venv", "venv", ".env", "env", "node_modules", ".idea", ".vscode",
    ];

    // Editor artefacts: vim swap (.swp, .swx, 4913), emacs lock/backup (.#x, #x#, x~), JetBrains (___jb_).
    private static readonly Regex EditorFiles = new(@"(^\.#|^#.*#$|~$|\.sw[a-z]$|^4913$|___jb_(tmp|old)___$)", RegexOptions.Compiled);

    private readonly HashSet<string> _ignoredDirectories;
    private readonly Regex[] _ignoredPatterns;
    private readonly string[] _ignoredPaths;

    public ReloadFilter(IEnumerable<string> ignoreDirs, IEnumerable<string> ignorePatterns, IEnumerable<string> ignorePaths)
    {
        _ignoredDirectories = [.. DefaultIgnoredDirectories, .. ignoreDirs];
        _ignoredPatterns = [.. ignorePatterns.Select(p => new Regex(p, RegexOptions.Compiled))];
        _ignoredPaths = [.. ignorePaths.Select(p => Path.GetFullPath(p).TrimEnd('/'))];
    }

    /// <summary>
    /// Whether a change to <paramref name="path"/> (absolute), seen while watching
    /// <paramref name="root"/>, should reload the app. Directory rules apply below the root only.
    /// </summary>
    public bool Triggers(string path, string root)
    {
        var name = Path.GetFileName(path);
        if (!SourceExtensions.Contains(Path.GetExtension(name), StringComparer.Ordinal) || EditorFiles.IsMatch(name)) return false;
        return Admits(path, root, lastIsDirectory: false);
    }

    /// <summary>Whether files below <paramref name="directory"/> could trigger at all (not an ignored tree).</summary>
    public bool Watches(string directory, string root) => Admits(directory, root, lastIsDirectory: true);

    private bool Admits(string path, string root, bool lastIsDirectory)
    {
        if (_ignoredPaths.Any(p => path == p || path.StartsWith(p + "/", StringComparison.Ordinal))) return false;
        var parts = Path.GetRelativePath(root, path).Split('/', StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            var isDirectory = lastIsDirectory || i < parts.Length - 1;
            if (isDirectory && (_ignoredDirectories.Contains(parts[i]) || parts[i].EndsWith(".egg-info", StringComparison.Ordinal))) return false;
            if (_ignoredPatterns.Any(p => p.IsMatch(parts[i]))) return false;
        }
        return true;
    }
}
