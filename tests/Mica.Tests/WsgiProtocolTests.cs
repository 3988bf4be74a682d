using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>WSGI over TLS (HTTP/1.1 and HTTP/2 by ALPN), cleartext HTTP/2 and a Unix socket: environ, streaming, file_wrapper.</summary>
public sealed partial class WsgiProtocolTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [GeneratedRegex(@"Listening at: (?<scheme>https?|unix):(//(?<host>[^:/]+):(?<port>\d+))?(?<path>/\S*)?")]
    private static partial Regex ListeningAt();

    /// <summary>Starts wsgi_app with <paramref name="options"/> and waits until its worker is ready; the "Listening at" match.</summary>
    private static async Task<(MicaProcess Mica, Match Listening)> StartAsync(params string[] options)
    {
        var mica = await MicaProcess.LaunchAsync(["--interface", "wsgi", .. options, Wsgi.App]);
        try
        {
            await mica.WaitForLineAsync(l => l.Source == Output.Stderr && l.Text.Contains(") ready", StringComparison.Ordinal), MicaProcess.ReadyTimeout);
            var line = await mica.WaitForStderrAsync("Listening at: ");
            return (mica, ListeningAt().Match(line.Text));
        }
        catch
        {
            await mica.DisposeAsync();
            throw;
        }
    }

    /// <summary>A self-signed certificate for localhost and 127.0.0.1 (openssl, bounded); the certificate and key paths.</summary>
    private async Task<(string Cert, string Key)> CertificateAsync()
    {
        var cert = Path.Combine(_dir.Path, "cert.pem");
        var key = Path.Combine(_dir.Path, "key.pem");
        var psi = new ProcessStartInfo("openssl") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                                  "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(cts.Token);
        Assert.True(p.ExitCode == 0, "openssl failed: " + await stderr);
        return (cert, key);
    }

    private static HttpClient TlsClient(Uri baseAddress, Version version) => new(new SocketsHttpHandler
    {
        SslOptions = { RemoteCertificateValidationCallback = (_, _, _, _) => true },
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        BaseAddress = baseAddress,
        Timeout = TimeSpan.FromSeconds(30),
        DefaultRequestVersion = version,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
    };

    private (string Path, string Sha256, int Length) MakeFile(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        var path = Path.Combine(_dir.Path, $"file-{length}.bin");
        File.WriteAllBytes(path, data);
        return (path, Convert.ToHexStringLower(SHA256.HashData(data)), length);
    }

    private static async Task AssertFileServedAsync(HttpClient client, (string Path, string Sha256, int Length) file, string extra = "")
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await client.GetAsync($"/file?path={Uri.EscapeDataString(file.Path)}{extra}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
        var (sha, length) = await Wsgi.HashAsync(body, cts.Token);
        Assert.Equal(file.Length, length);
        Assert.True(sha == file.Sha256, $"the file's bytes over HTTP/{response.Version} differ from the file (sent past the TLS or HTTP/2 framing?)");
    }

    [Theory]
    [InlineData("1.1")]
    [InlineData("2.0")]
    public async Task Tls_gives_https_scheme_and_sends_files_and_streams_intact(string version)
    {
        var (cert, key) = await CertificateAsync();
        var (mica, listening) = await StartAsync("--ssl-certificate", cert, "--ssl-keyfile", key);
        await using var _ = mica;
        Assert.Equal("https", listening.Groups["scheme"].Value);
        using var client = TlsClient(new Uri($"https://127.0.0.1:{listening.Groups["port"].Value}/"), Version.Parse(version));

        using (var response = await client.GetAsync("/env/tls"))
        {
            Assert.Equal(Version.Parse(version), response.Version);
            var environ = Json.Parse(await response.Content.ReadAsStringAsync()).Environ();
            Assert.Equal("https", environ.Str("wsgi.url_scheme"));
            Assert.Equal(version == "2.0" ? "HTTP/2" : "HTTP/1.1", environ.Str("SERVER_PROTOCOL"));
            Assert.Equal($"127.0.0.1:{listening.Groups["port"].Value}", environ.Str("HTTP_HOST"));
        }
        var file = MakeFile(3 * 1024 * 1024 + 5);
        await AssertFileServedAsync(client, file, "&cl=1");
        await AssertFileServedAsync(client, file);
        Assert.Equal("chunk-0\nchunk-1\nchunk-2\n", await client.GetStringAsync("/gen?n=3"));
    }

    [Fact]
    public async Task Cleartext_http2_streams_the_response_and_the_request_body()
    {
        var (mica, listening) = await StartAsync();
        await using var _ = mica;
        using var client = TlsClient(new Uri($"http://127.0.0.1:{listening.Groups["port"].Value}/"), HttpVersion.Version20);

        using (var response = await client.GetAsync("/env/h2c"))
        {
            Assert.Equal(HttpVersion.Version20, response.Version);
            var environ = Json.Parse(await response.Content.ReadAsStringAsync()).Environ();
            Assert.Equal("HTTP/2", environ.Str("SERVER_PROTOCOL"));
            Assert.Equal("http", environ.Str("wsgi.url_scheme"));
        }

        // The first chunk arrives while the generator waits for /release.
        var key = Keys.New();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using (var stream = await client.GetAsync($"/gen-until?key={key}", HttpCompletionOption.ResponseHeadersRead, cts.Token))
        {
            await using var body = await stream.Content.ReadAsStreamAsync(cts.Token);
            var buffer = new byte[64];
            var text = new StringBuilder();
            using (var firstWait = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
                while (!text.ToString().Contains('\n'))
                {
                    var n = await body.ReadAsync(buffer, firstWait.Token);
                    if (n == 0) break;
                    text.Append(Encoding.ASCII.GetString(buffer, 0, n));
                }
            Assert.Equal("first\n", text.ToString());
            Assert.Equal("released", await client.GetStringAsync($"/release?key={key}", cts.Token));
            Assert.Equal("second\n", await new StreamReader(body).ReadToEndAsync(cts.Token));
        }

        var data = new byte[2 * 1024 * 1024];
        new Random(8).NextBytes(data);
        using var upload = await client.PostAsync("/upload-sha", new ByteArrayContent(data), cts.Token);
        Assert.Equal(HttpStatusCode.OK, upload.StatusCode);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), Json.Parse(await upload.Content.ReadAsStringAsync(cts.Token)).Str("sha256"));

        await AssertFileServedAsync(client, MakeFile(1024 * 1024 + 1), "&cl=1");
    }

    [Fact]
    public async Task Unix_socket_serves_environ_and_files()
    {
        var socketPath = Path.Combine(_dir.Path, "m.sock");
        var (mica, listening) = await StartAsync("--uds", socketPath);
        await using var _ = mica;
        Assert.Equal("unix", listening.Groups["scheme"].Value);
        using var client = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        })
        { BaseAddress = new Uri("http://localhost/"), Timeout = TimeSpan.FromSeconds(30) };

        using (var response = await client.GetAsync("/env/uds?q=1"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var environ = Json.Parse(await response.Content.ReadAsStringAsync()).Environ();
            Assert.Equal("/env/uds", environ.Str("PATH_INFO"));
            Assert.Equal("q=1", environ.Str("QUERY_STRING"));
            Assert.Equal("localhost", environ.Str("HTTP_HOST"));
        }
        await AssertFileServedAsync(client, MakeFile(2 * 1024 * 1024 + 3), "&cl=1");
    }
}
