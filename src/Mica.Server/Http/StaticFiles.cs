using Mica.Server.Native;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Mica.Server.Http;

/// <summary>One <c>--static-path-route</c> and the directory (<c>--static-path-mount</c>) it serves.</summary>
public sealed record StaticMount(string Route, string Directory);

/// <summary>
/// <c>--static-path-*</c>: files served by Kestrel, never entering Python. ASP.NET's static file
/// middleware does the HTTP (content types, ETag and Last-Modified, conditional requests → 304,
/// Range → 206, HEAD); this adds what Granian does around it: a path under a route that names no
/// file is a 404 (the app never sees it), a directory is served through <c>--static-path-dir-to-file</c>,
/// <c>Cache-Control: max-age</c> from <c>--static-path-expires</c>, and nothing outside the mount is
/// reachable, whether by <c>..</c> or by a symlink pointing out of it.
/// </summary>
internal sealed class StaticFiles
{
    private readonly (string Route, ConfinedFiles Files, StaticFileMiddleware Middleware)[] _mounts;
    private readonly string? _dirToFile;

    public StaticFiles(IReadOnlyList<StaticMount> mounts, string? dirToFile, int expiresSeconds)
    {
        _dirToFile = dirToFile;
        var cacheControl = expiresSeconds > 0 ? $"max-age={expiresSeconds}" : null;
        _mounts = mounts.Select(mount =>
        {
            var files = new ConfinedFiles(Path.GetFullPath(mount.Directory));
            var options = new StaticFileOptions
            {
                FileProvider = files,
                RequestPath = PathString.Empty,
                ServeUnknownFileTypes = true,
                DefaultContentType = "application/octet-stream",
                OnPrepareResponse = cacheControl is null ? _ => { } : context => context.Context.Response.Headers.CacheControl = cacheControl,
            };
            var middleware = new StaticFileMiddleware(NotFound, new NoWebRoot(), Options.Create(options), NullLoggerFactory.Instance);
            return (mount.Route.TrimEnd('/'), files, middleware);
        }).ToArray();
    }

    /// <summary>
    /// Serves the request if its path is under a static route; null if the app should have it.
    /// Matched as Granian does, on the path as sent (percent-decoded, case-sensitive, dot segments
    /// kept): a <c>..</c> under a route is resolved inside the mount (and refused), never normalised
    /// into a path the app would then see differently from how the route saw it.
    /// </summary>
    public Task? TryServe(IFeatureCollection features)
    {
        var path = RequestTarget.Of(features.GetRequiredFeature<IHttpRequestFeature>()).DecodedPath();
        foreach (var (route, files, middleware) in _mounts)
        {
            if (!(path.Length == route.Length || path.Length > route.Length && path[route.Length] == '/')
                || !path.StartsWith(route, StringComparison.Ordinal)) continue;
            var rest = path.Length == route.Length ? "/" : path[route.Length..];
            // A directory stands for its --static-path-dir-to-file (the path names it, so its type is right).
            if (_dirToFile is not null && files.IsDirectory(rest))
                rest = rest.TrimEnd('/') + "/" + _dirToFile;
            var context = new DefaultHttpContext(features);
            context.Request.Path = new PathString(rest);
            return middleware.Invoke(context);
        }
        return null;
    }

    private static Task NotFound(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }

    /// <summary>
    /// A directory's files, and only those: a path that resolves (through symlinks) outside the
    /// root does not exist, nor does a directory (no listings).
    /// </summary>
    private sealed class ConfinedFiles(string root) : IFileProvider
    {
        private readonly PhysicalFileProvider _files = new(root, Microsoft.Extensions.FileProviders.Physical.ExclusionFilters.None);
        private readonly string _realRoot = (Libc.RealPath(root) ?? root) + Path.DirectorySeparatorChar;

        public IFileInfo GetFileInfo(string subpath)
        {
            var file = _files.GetFileInfo(subpath);
            if (!file.Exists || file.IsDirectory || file.PhysicalPath is null) return new NotFoundFileInfo(subpath);
            return Libc.RealPath(file.PhysicalPath) is { } real && real.StartsWith(_realRoot, StringComparison.Ordinal)
                ? file
                : new NotFoundFileInfo(subpath);
        }

        public bool IsDirectory(string subpath) => _files.GetDirectoryContents(subpath).Exists;

        public IDirectoryContents GetDirectoryContents(string subpath) => NotFoundDirectoryContents.Singleton;

        public IChangeToken Watch(string filter) => NullChangeToken.Singleton;
    }

    /// <summary>The middleware asks for a web host environment, used only when no file provider is given.</summary>
    private sealed class NoWebRoot : IWebHostEnvironment
    {
        public string WebRootPath { get; set; } = "";
        public IFileProvider WebRootFileProvider { get; set; } = new NullFileProvider();
        public string ApplicationName { get; set; } = "mica";
        public IFileProvider ContentRootFileProvider { get; set; } = new NullFileProvider();
        public string ContentRootPath { get; set; } = "";
        public string EnvironmentName { get; set; } = "Production";
    }
}
