using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace Mica.Tests.Infrastructure;

// Helpers for the protocol tests (HTTP/2, TLS, Unix domain sockets, pathsend): a server started and
// awaited whatever it listens on (https:// or unix: as well as http://), external clients (curl,
// h2load, nghttp, python) run bounded, and a test PKI made with the openssl CLI.

/// <summary>What an external program printed and how it ended.</summary>
public sealed record ToolResult(string Command, int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"$ {Command}\nexit code {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

public static class Tool
{
    /// <summary>Runs <paramref name="file"/> with <paramref name="args"/> to completion; kills it and throws after <paramref name="timeout"/>.</summary>
    public static async Task<ToolResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        var command = file + " " + string.Join(' ', psi.ArgumentList.Select(a => a.Contains(' ') ? $"'{a}'" : a));
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start " + command);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var limit = timeout ?? TimeSpan.FromSeconds(20);
        using var cts = new CancellationTokenSource(limit);
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new TimeoutException($"{command}: not done within {limit.TotalSeconds:0.#} s");
        }
        return new ToolResult(command, p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Fails the test with <paramref name="result"/> unless it exited 0.</summary>
    public static ToolResult Ok(this ToolResult result)
    {
        Assert.True(result.ExitCode == 0, result.ToString());
        return result;
    }
}

/// <summary>One curl transfer: curl's exit code, its <c>%{json}</c> write-out, the body and the response headers.</summary>
public sealed record CurlResult(ToolResult Run, JsonElement Info, byte[] Body, string Headers)
{
    public int ExitCode => Run.ExitCode;
    /// <summary>The status code; 0 when no response was received.</summary>
    public int Status => Info.ValueKind == JsonValueKind.Object && Info.TryGetProperty("response_code", out var c) ? c.GetInt32() : 0;
    /// <summary>"1.1", "2", ... ("0" when no response).</summary>
    public string HttpVersion => Info.ValueKind == JsonValueKind.Object && Info.TryGetProperty("http_version", out var v) ? v.GetString() ?? "" : "";
    public string BodyText => Encoding.UTF8.GetString(Body);
    public JsonElement Json => Infrastructure.Json.Parse(Body);
    public override string ToString() => $"{Run}\n--- headers\n{Headers}\n--- body (first 500 bytes)\n{(BodyText.Length > 500 ? BodyText[..500] : BodyText)}";
}

public static class Curl
{
    /// <summary>
    /// <c>curl -sS --max-time 10 -o BODY -D HEADERS -w %{json} ARGS</c>: never throws for a failed
    /// transfer (look at <see cref="CurlResult.ExitCode"/> and <see cref="CurlResult.Status"/>).
    /// </summary>
    public static async Task<CurlResult> RunAsync(params string[] args)
    {
        var dir = Directory.CreateTempSubdirectory("mica-curl-");
        try
        {
            var body = Path.Combine(dir.FullName, "body");
            var headers = Path.Combine(dir.FullName, "headers");
            var run = await Tool.RunAsync("curl", ["-sS", "--max-time", "10", "-o", body, "-D", headers, "-w", "%{json}", .. args], TimeSpan.FromSeconds(20));
            JsonElement info = default;
            try { info = Json.Parse(run.Stdout); }
            catch (JsonException) { }
            return new CurlResult(run, info,
                File.Exists(body) ? await File.ReadAllBytesAsync(body) : [],
                File.Exists(headers) ? await File.ReadAllTextAsync(headers) : "");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Like <see cref="RunAsync"/>, but fails the test unless curl got a 200.</summary>
    public static async Task<CurlResult> OkAsync(params string[] args)
    {
        var result = await RunAsync(args);
        Assert.True(result.ExitCode == 0 && result.Status == 200, $"expected a 200\n{result}");
        return result;
    }
}

/// <summary>
/// A mica process started with the usual test options (<c>--port 0 --working-dir tests/apps</c>),
/// awaited until its worker is ready, whatever it listens on: <c>http://</c>, <c>https://</c> or
/// <c>unix:</c> (what <see cref="MicaProcess.StartAsync"/> cannot parse).
/// </summary>
public sealed partial class ProtoServer : IAsyncDisposable
{
    private ProtoServer(MicaProcess mica, string url)
    {
        Mica = mica;
        Url = url;
        if (url.StartsWith("unix:", StringComparison.Ordinal)) UnixPath = url["unix:".Length..];
        else
        {
            var uri = new Uri(url);
            Https = uri.Scheme == "https";
            Port = uri.Port;
        }
    }

    public MicaProcess Mica { get; }
    /// <summary>As logged by "Listening at: URL".</summary>
    public string Url { get; }
    public bool Https { get; }
    /// <summary>The TCP port (0 for a Unix socket).</summary>
    public int Port { get; }
    /// <summary>The socket file of a Unix domain socket, else null.</summary>
    public string? UnixPath { get; }
    /// <summary>http(s)://127.0.0.1:PORT (the test certificate names 127.0.0.1 too).</summary>
    public string Base => $"{(Https ? "https" : "http")}://127.0.0.1:{Port}";

    public static async Task<ProtoServer> StartAsync(string app, params string[] options)
    {
        var mica = await MicaProcess.LaunchAsync([.. options, app]);
        try
        {
            await mica.WaitForLineAsync(l => l.Source == Output.Stderr && ReadyPattern().IsMatch(l.Text), MicaProcess.ReadyTimeout);
            var listening = mica.StderrLines.Select(l => ListeningPattern().Match(l)).FirstOrDefault(m => m.Success)
                ?? throw new InvalidOperationException("ready, but no 'Listening at' line\n" + mica.Dump());
            return new ProtoServer(mica, listening.Groups["url"].Value);
        }
        catch
        {
            await mica.DisposeAsync();
            throw;
        }
    }

    public bool IsAlive => MicaServer.IsAlive(Mica);

    public ValueTask DisposeAsync() => Mica.DisposeAsync();

    [GeneratedRegex(@"worker-\d+ \(pid \d+\) ready")]
    private static partial Regex ReadyPattern();

    [GeneratedRegex(@"Listening at: (?<url>\S+)")]
    private static partial Regex ListeningPattern();
}

/// <summary>
/// A class fixture: one <see cref="ProtoServer"/> shared by a class's tests, restarted for the next
/// test if it died (and the test during which it died fails, see <see cref="ProtoServerTests{T}"/>).
/// </summary>
public abstract class ProtoServerFixture : IAsyncLifetime
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private ProtoServer? _server;

    protected abstract string App { get; }
    protected virtual Task<string[]> OptionsAsync() => Task.FromResult<string[]>([]);

    public ProtoServer Server => _server ?? throw new InvalidOperationException("server not started");

    public async Task InitializeAsync() => _server = await ProtoServer.StartAsync(App, await OptionsAsync());

    public async Task EnsureRunningAsync()
    {
        if (_server is { IsAlive: true }) return;
        await _lock.WaitAsync();
        try
        {
            if (_server is { IsAlive: true }) return;
            if (_server is not null)
            {
                MicaProcess.SaveLog(_server.Mica, "died");
                await _server.DisposeAsync();
            }
            await InitializeAsync();
        }
        finally
        {
            _lock.Release();
        }
    }

    public virtual async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }
}

public abstract class ProtoServerTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>, IAsyncLifetime
    where TFixture : ProtoServerFixture
{
    private ProtoServer? _atStart;

    protected TFixture Fixture => fixture;
    protected ProtoServer Server => fixture.Server;
    protected MicaProcess Mica => fixture.Server.Mica;

    public async Task InitializeAsync()
    {
        await fixture.EnsureRunningAsync();
        _atStart = fixture.Server;
    }

    public async Task DisposeAsync()
    {
        if (_atStart is null || _atStart.IsAlive) return;
        try { await _atStart.Mica.WaitForExitAsync(TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { }
        throw new InvalidOperationException($"mica's worker died during this test\n{_atStart.Mica.Dump(60)}");
    }
}

/// <summary>Python's httpx (with h2) as a client: tests/apps/proto_httpx_client.py, run by /usr/bin/python3.</summary>
public static class Httpx
{
    /// <summary><paramref name="n"/> concurrent GETs of <paramref name="url"/> on one AsyncClient; the script's JSON summary.</summary>
    public static async Task<JsonElement> GetAsync(string url, int n = 1, bool h2Only = false, string? cacert = null, string? cert = null, string? key = null)
    {
        List<string> args = [Path.Combine(MicaProcess.AppsDir, "proto_httpx_client.py"), url, "--n", n.ToString()];
        if (h2Only) args.Add("--h2-only");
        if (cacert is not null) args.AddRange(["--cacert", cacert]);
        if (cert is not null) args.AddRange(["--cert", cert, "--key", key!]);
        var run = (await Tool.RunAsync(MicaProcess.Python, args, TimeSpan.FromSeconds(30))).Ok();
        return Json.Parse(run.Stdout);
    }
}

/// <summary>HttpClients for HTTP/2 (prior knowledge on cleartext, ALPN over TLS) and HTTP/1.1.</summary>
public static class Clients
{
    public static SocketsHttpHandler Handler(TestPki? pki = null, X509Certificate2? clientCertificate = null)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            AllowAutoRedirect = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        };
        if (pki is not null) handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => pki.Trusts(certificate);
        if (clientCertificate is not null) handler.SslOptions.ClientCertificates = [clientCertificate];
        return handler;
    }

    /// <summary>An HttpClient that speaks only <paramref name="version"/> (exact: no fallback, no upgrade).</summary>
    public static HttpClient Create(string baseAddress, Version version, TestPki? pki = null, HttpMessageHandler? handler = null) =>
        new(handler ?? Handler(pki))
        {
            BaseAddress = new Uri(baseAddress),
            DefaultRequestVersion = version,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(20),
        };

    public static HttpClient Http2(string baseAddress, TestPki? pki = null) => Create(baseAddress, HttpVersion.Version20, pki);
    public static HttpClient Http11(string baseAddress, TestPki? pki = null) => Create(baseAddress, HttpVersion.Version11, pki);
}

/// <summary>
/// A throw-away PKI made once per test run with the openssl CLI, in a temp directory: a CA; a
/// server certificate for localhost and 127.0.0.1 (its key also as encrypted PKCS#8, password
/// <see cref="KeyPassword"/>); another server certificate signed by an intermediate CA (a chain file
/// with both); client certificates client1 (revoked in <see cref="Crl"/>) and
/// client2, both signed by the CA; and "stranger", signed by another CA.
/// </summary>
public sealed class TestPki
{
    public const string KeyPassword = "secret";
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static TestPki? _instance;

    private TestPki(string dir) => Dir = dir;

    public string Dir { get; }
    public string CaCert => P("ca.pem");
    public string ServerCert => P("server.pem");
    public string ServerKey => P("server.key");
    /// <summary>The server key as encrypted PKCS#8 (password <see cref="KeyPassword"/>).</summary>
    public string ServerKeyEncrypted => P("protected.pem");
    public string Crl => P("crl.pem");
    /// <summary>A server certificate signed by an intermediate CA (itself signed by the CA), followed by the intermediate.</summary>
    public string ChainedServerFullChain => P("fullchain.pem");
    public string ChainedServerLeaf => P("chained.pem");
    public string ChainedServerKey => P("chained.key");
    public string Cert(string name) => P(name + ".pem");
    public string Key(string name) => P(name + ".key");
    private string P(string name) => Path.Combine(Dir, name);

    public X509Certificate2 LoadClient(string name) =>
        X509Certificate2.CreateFromPemFile(Cert(name), Key(name)) is var pem
            ? X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null)   // an ephemeral PEM key cannot be used by SslStream
            : throw new InvalidOperationException();

    /// <summary>True when <paramref name="certificate"/> chains to this CA (for HttpClient and ClientWebSocket).</summary>
    public bool Trusts(X509Certificate? certificate)
    {
        if (certificate is null) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(X509CertificateLoader.LoadCertificateFromFile(CaCert));
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }

    /// <summary>The DER bytes of the (first) certificate in a PEM text, to compare PEMs whatever their line breaks.</summary>
    public static byte[] Der(string pem) => X509Certificate2.CreateFromPem(pem).RawData;

    public static async Task<TestPki> GetAsync()
    {
        if (_instance is not null) return _instance;
        await Gate.WaitAsync();
        try
        {
            if (_instance is not null) return _instance;
            var dir = Directory.CreateTempSubdirectory("mica-pki-").FullName;
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
            };
            await MakeAsync(dir);
            return _instance = new TestPki(dir);
        }
        finally
        {
            Gate.Release();
        }
    }

    private static async Task MakeAsync(string dir)
    {
        string P(string name) => Path.Combine(dir, name);
        async Task Openssl(params string[] args) => (await Tool.RunAsync("openssl", args, TimeSpan.FromSeconds(30))).Ok();
        string[] NewKey(string key) => ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", P(key)];

        await File.WriteAllTextAsync(P("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
        await File.WriteAllTextAsync(P("client.ext"), "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n");
        foreach (var (ca, name) in new[] { ("ca", "Mica Test CA"), ("other-ca", "Other Test CA") })
            await Openssl(["req", "-x509", .. NewKey(ca + ".key"), "-out", P(ca + ".pem"), "-days", "3", "-subj", "/CN=" + name,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        await File.WriteAllTextAsync(P("inter.ext"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n");
        foreach (var (name, ca, ext) in new[] { ("server", "ca", "server.ext"), ("client1", "ca", "client.ext"), ("client2", "ca", "client.ext"),
                     ("stranger", "other-ca", "client.ext"), ("inter-ca", "ca", "inter.ext"), ("chained", "inter-ca", "server.ext") })
        {
            await Openssl(["req", .. NewKey(name + ".key"), "-out", P(name + ".csr"), "-subj", "/CN=" + (name is "server" or "chained" ? "localhost" : name)]);
            await Openssl("x509", "-req", "-in", P(name + ".csr"), "-CA", P(ca + ".pem"), "-CAkey", P(ca + ".key"), "-CAcreateserial",
                "-out", P(name + ".pem"), "-days", "3", "-extfile", P(ext));
        }
        await File.WriteAllTextAsync(P("fullchain.pem"), await File.ReadAllTextAsync(P("chained.pem")) + await File.ReadAllTextAsync(P("inter-ca.pem")));
        await Openssl("pkcs8", "-topk8", "-in", P("server.key"), "-out", P("protected.pem"), "-passout", "pass:" + KeyPassword);

        // A CRL revoking client1: `openssl ca` needs a database and a config.
        await File.WriteAllTextAsync(P("index.txt"), "");
        await File.WriteAllTextAsync(P("crlnumber"), "1000\n");
        await File.WriteAllTextAsync(P("ca.cnf"),
            $"[ ca ]\ndefault_ca = testca\n[ testca ]\ndatabase = {P("index.txt")}\ncrlnumber = {P("crlnumber")}\ndefault_md = sha256\ndefault_crl_days = 3\n");
        await Openssl("ca", "-config", P("ca.cnf"), "-keyfile", P("ca.key"), "-cert", P("ca.pem"), "-revoke", P("client1.pem"));
        await Openssl("ca", "-config", P("ca.cnf"), "-keyfile", P("ca.key"), "-cert", P("ca.pem"), "-gencrl", "-out", P("crl.pem"));
    }
}

public static partial class FileIdentity
{
    /// <summary>(st_dev, st_ino) of a path by stat(2) (works for socket files, which cannot be opened); default when absent.</summary>
    public static unsafe (ulong Device, ulong Inode) Of(string path)
    {
        var buffer = stackalloc ulong[32];   // struct stat: 144 bytes on x86-64, 128 on arm64; dev and ino first
        return stat(path, buffer) == 0 ? (buffer[0], buffer[1]) : default;
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int stat(string path, ulong* buffer);
}

/// <summary>A new empty directory under /tmp (short: Unix socket paths must fit in 108 bytes), deleted on Dispose.</summary>
public sealed class ScratchDir : IDisposable
{
    public string Path { get; } = Master.TempDir().FullName;
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
