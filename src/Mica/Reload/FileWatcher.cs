using System.Threading.Channels;

namespace Mica.Reload;

/// <summary>
/// Watches the <c>--reload-paths</c> (inotify, through FileSystemWatcher: directories created later
/// are watched too) and posts one <see cref="SourcesChanged"/> per burst of changes: a burst ends
/// when no relevant change has been seen for the quiet period, so saving 200 files at once
/// (<c>git checkout</c>) reloads once. Deleting and re-creating a file (atomic saves) counts.
/// </summary>
internal sealed class FileWatcher : IDisposable
{
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly ReloadFilter _filter;
    private readonly ChannelWriter<SupervisorEvent> _events;
    private readonly TimeSpan _quiet;
    private readonly Lock _lock = new();
    private readonly List<string> _changed = [];
    private Timer? _burst;

    public FileWatcher(IEnumerable<string> paths, ReloadFilter filter, TimeSpan quiet, ChannelWriter<SupervisorEvent> events)
    {
        _filter = filter;
        _quiet = quiet;
        _events = events;
        foreach (var path in paths.Select(Path.GetFullPath))
        {
            var directory = Directory.Exists(path) ? path : Path.GetDirectoryName(path)!;
            var isFile = !Directory.Exists(path);
            var watcher = new FileSystemWatcher(directory)
            {
                IncludeSubdirectories = !isFile,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
            };
            if (isFile) watcher.Filter = Path.GetFileName(path);
            watcher.Changed += (_, e) => Seen(e.FullPath, directory);
            watcher.Created += (_, e) => Seen(e.FullPath, directory);
            watcher.Deleted += (_, e) => Seen(e.FullPath, directory);
            watcher.Renamed += (_, e) => { Seen(e.OldFullPath, directory); Seen(e.FullPath, directory); };
            watcher.Error += (_, e) => Server.Log.Error(
                $"File watching of {directory} failed: {e.GetException().Message}. Changes may be missed; " +
                "raise fs.inotify.max_user_watches (sysctl) or narrow --reload-paths / --reload-ignore-dirs.");
            try
            {
                watcher.EnableRaisingEvents = true;
            }
            catch (IOException e)
            {
                watcher.Dispose();
                throw new StartupError($"cannot watch {directory} for changes: {e.Message} " +
                    "(the inotify watch limit? raise fs.inotify.max_user_watches or narrow --reload-paths)");
            }
            _watchers.Add(watcher);
        }
    }

    private void Seen(string path, string root)
    {
        // A directory created or moved in (mkdir + files, git checkout, mv): its files may have
        // arrived before the watch on it existed, so look inside.
        if (Directory.Exists(path))
        {
            if (!_filter.Watches(path, root)) return;
            foreach (var file in Directory.EnumerateFiles(path, "*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }).Take(10_000))
                Seen(file, root);
            return;
        }
        if (!_filter.Triggers(path, root)) return;
        lock (_lock)
        {
            _changed.Add(path);
            _burst ??= new Timer(_ => EndBurst(), null, Timeout.Infinite, Timeout.Infinite);
            _burst.Change(_quiet, Timeout.InfiniteTimeSpan);
        }
    }

    private void EndBurst()
    {
        string[] changed;
        lock (_lock)
        {
            changed = [.. _changed.Distinct()];
            _changed.Clear();
        }
        if (changed.Length > 0) _events.TryWrite(new SourcesChanged(changed));
    }

    public void Dispose()
    {
        foreach (var watcher in _watchers) watcher.Dispose();
        _burst?.Dispose();
    }
}

internal sealed record SourcesChanged(IReadOnlyList<string> Paths) : SupervisorEvent;
