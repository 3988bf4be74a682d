using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// A throwaway directory tree for the <c>--static-path-*</c> tests, made at test time:
/// <code>
/// ROOT/secret.txt                  outside every mount: its text must never be served
/// ROOT/index.html                  outside too, with the same secret (bait for dir-to-file through dir-out)
/// ROOT/public/                     the main mount
///   style.css app.js page.html data.json image.png blob.qqunknown noextension
///   big.bin                        1 MiB of random bytes
///   same.txt                       "same.txt from public"
///   café menu.txt
///   index.html                     the mount's index (for --static-path-dir-to-file index.html)
///   sub/index.html sub/other.txt
///   noindex/file.txt               a directory without index.html
///   link-out.txt -> ROOT/secret.txt     a symlink to a file outside the mount
///   dir-out -> ROOT                     a symlink to a directory outside the mount
/// ROOT/assets/                     the second mount
///   same.txt                       "same.txt from assets"
///   only-assets.txt
/// </code>
/// </summary>
public sealed class StaticSite : IDisposable
{
    public string Root { get; }
    public string Public => Path.Combine(Root, "public");
    public string Assets => Path.Combine(Root, "assets");
    public string SecretPath => Path.Combine(Root, "secret.txt");
    /// <summary>The content of ROOT/secret.txt, unique to this site.</summary>
    public string Secret { get; } = "TOP-SECRET-" + Guid.NewGuid().ToString("N");
    public byte[] Big { get; } = RandomNumberGenerator.GetBytes(1024 * 1024);

    public const string Css = "body { color: #123456; }\n";
    public const string Js = "console.log('mica static');\n";
    public const string Html = "<!doctype html><title>page</title><p>static page</p>\n";
    public const string JsonText = "{\"static\": true}\n";
    public const string RootIndex = "<!doctype html><title>root index</title>\n";
    public const string SubIndex = "<!doctype html><title>sub index</title>\n";
    public const string Unicode = "a file whose name has an accent and a space\n";
    /// <summary>The smallest valid PNG: 1x1, one transparent pixel.</summary>
    public static readonly byte[] Png = Convert.FromBase64String(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==");
    public static readonly byte[] Blob = [0, 1, 2, 3, 0xFF, 0xFE, 0x80, 0x7F];

    public StaticSite()
    {
        Root = Path.Combine(Path.GetTempPath(), "mica-static-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path.Combine(Public, "sub"));
        Directory.CreateDirectory(Path.Combine(Public, "noindex"));
        Directory.CreateDirectory(Assets);
        File.WriteAllText(SecretPath, Secret);
        File.WriteAllText(Path.Combine(Root, "index.html"), Secret);
        Write("public/style.css", Css);
        Write("public/app.js", Js);
        Write("public/page.html", Html);
        Write("public/data.json", JsonText);
        File.WriteAllBytes(Path.Combine(Public, "image.png"), Png);
        File.WriteAllBytes(Path.Combine(Public, "blob.qqunknown"), Blob);
        File.WriteAllBytes(Path.Combine(Public, "noextension"), Blob);
        File.WriteAllBytes(Path.Combine(Public, "big.bin"), Big);
        Write("public/same.txt", "same.txt from public");
        Write("public/café menu.txt", Unicode);
        Write("public/index.html", RootIndex);
        Write("public/sub/index.html", SubIndex);
        Write("public/sub/other.txt", "other");
        Write("public/noindex/file.txt", "in a directory without index");
        File.CreateSymbolicLink(Path.Combine(Public, "link-out.txt"), SecretPath);
        Directory.CreateSymbolicLink(Path.Combine(Public, "dir-out"), Root);
        Write("assets/same.txt", "same.txt from assets");
        Write("assets/only-assets.txt", "only in assets");
    }

    private void Write(string relative, string text) => File.WriteAllText(Path.Combine(Root, relative), text, new UTF8Encoding(false));

    public static string Sha256(byte[] data) => Convert.ToHexString(SHA256.HashData(data));

    public void Dispose()
    {
        try
        {
            // The links first, so that nothing can follow them into ROOT.
            File.Delete(Path.Combine(Public, "link-out.txt"));
            File.Delete(Path.Combine(Public, "dir-out"));
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    // ------------------------------------------------------------------ clients

    /// <summary>An HttpClient speaking HTTP/2 only (prior knowledge on cleartext), 20 s timeout.</summary>
    public static HttpClient CreateHttp2Client(MicaProcess mica) => new(new SocketsHttpHandler
    {
        ConnectTimeout = TimeSpan.FromSeconds(5),
        AllowAutoRedirect = false,
    })
    {
        BaseAddress = mica.BaseAddress,
        Timeout = TimeSpan.FromSeconds(20),
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    /// <summary>The requests the app (static_app.py) saw so far, from its GET /seen.</summary>
    public static async Task<IReadOnlyList<string>> SeenAsync(HttpClient client) =>
        [.. (await client.GetJsonAsync("/seen")).EnumerateArray().Select(e => e.GetString()!)];

    public sealed record CurlResult(int ExitCode, int Status, string Head, byte[] Body, string Stderr)
    {
        public string BodyText => Encoding.UTF8.GetString(Body);
        public override string ToString() => $"curl exit {ExitCode}, status {Status}\n{Head}\n{BodyText}\nstderr: {Stderr}";
    }

    /// <summary>
    /// Runs <c>curl -sS -i ARGS URL</c> (bounded: --max-time 10, killed after 20 s); returns the status,
    /// the head (status line and headers) and the body.
    /// </summary>
    public static async Task<CurlResult> CurlAsync(string url, params string[] args)
    {
        var psi = new ProcessStartInfo("curl")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in (string[])["-sS", "-i", "--max-time", "10", .. args, url]) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        using var output = new MemoryStream();
        var copy = p.StandardOutput.BaseStream.CopyToAsync(output);
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            throw new TimeoutException($"curl {url} did not finish within 20 s");
        }
        await copy;
        var all = output.ToArray();
        var split = all.AsSpan().IndexOf("\r\n\r\n"u8);
        var head = split < 0 ? Encoding.Latin1.GetString(all) : Encoding.Latin1.GetString(all, 0, split);
        var body = split < 0 ? [] : all[(split + 4)..];
        var status = 0;
        var statusLine = head.Split("\r\n")[0].Split(' ');
        if (statusLine.Length >= 2) int.TryParse(statusLine[1], out status);
        return new CurlResult(p.ExitCode, status, head, body, await stderr);
    }
}

/// <summary>A mica serving static_app.py with static mounts on a <see cref="StaticSite"/> of its own.</summary>
public abstract class StaticServer : MicaServer, IDisposable
{
    public StaticSite Site { get; } = new();

    public void Dispose() => Site.Dispose();
}

/// <summary>ASGI; two mounts: /static → public, /assets → assets; default --static-path-expires; no dir-to-file.</summary>
public sealed class StaticAsgiServer : StaticServer
{
    protected override string App => "static_app:app";
    protected override string[] Options =>
    [
        "--static-path-mount", Site.Public, "--static-path-route", "/static",
        "--static-path-mount", Site.Assets, "--static-path-route", "/assets",
    ];
}

/// <summary>ASGI; one mount without a route (so /static); --static-path-dir-to-file index.html; --static-path-expires 0.</summary>
public sealed class StaticIndexServer : StaticServer
{
    protected override string App => "static_app:app";
    protected override string[] Options =>
        ["--static-path-mount", Site.Public, "--static-path-dir-to-file", "index.html", "--static-path-expires", "0"];
}

/// <summary>WSGI (--interface wsgi); one mount on /files; --static-path-expires 60.</summary>
public sealed class StaticWsgiServer : StaticServer
{
    protected override string App => "static_app:wsgi_app";
    protected override string[] Options =>
    [
        "--interface", "wsgi",
        "--static-path-mount", Site.Public, "--static-path-route", "/files", "--static-path-expires", "60",
    ];
}
