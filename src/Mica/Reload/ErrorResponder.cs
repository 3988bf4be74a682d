using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using Mica.Server.Hosting;
using Mica.Server.Native;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Mica.Reload;

/// <summary>
/// While no worker is healthy under <c>--reload --reload-ignore-worker-failure</c>, the master
/// itself accepts on the listening socket and answers every request with 503 and the error the
/// worker reported: an HTML page (exception, file:line, traceback) that reloads itself every second
/// for browsers, plain text for everything else, <c>Retry-After: 1</c>. No Python involved, so the
/// developer sees the error instead of a refused or hanging connection, and the page recovers by
/// itself once a save fixes the code. Paused as soon as a worker is ready. Over TLS it speaks TLS
/// too, with the server's certificate (and its client-certificate rule), as the workers would.
///
/// One duplicate of the listening socket serves the master's whole life: closing a duplicate does
/// not remove it from the runtime's epoll set (the socket itself stays open through the original
/// descriptor), so a second duplicate on the same number would never be polled.
/// </summary>
internal sealed partial class ErrorResponder(Listener listener, HttpsConnectionAdapterOptions? tls) : IDisposable
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(5);

    private Socket? _socket;
    private CancellationTokenSource? _serving;
    private byte[] _html = [], _text = [];

    public bool Serving => _serving is not null;

    /// <summary>Starts answering with <paramref name="failure"/> (or switches to it).</summary>
    public void Serve(WorkerMessage failure)
    {
        _html = Response("text/html; charset=utf-8", HtmlPage(failure));
        _text = Response("text/plain; charset=utf-8", TextPage(failure));
        if (_serving is not null) return;
        _serving = new CancellationTokenSource();
        _ = AcceptLoopAsync(Socket(), _serving.Token);
    }

    /// <summary>Stops accepting; the workers take the connections again.</summary>
    public void Pause()
    {
        _serving?.Cancel();
        _serving?.Dispose();
        _serving = null;
    }

    private Socket Socket()
    {
        if (_socket is not null) return _socket;
        var fd = Libc.fcntl(listener.Fd, Libc.F_DUPFD_CLOEXEC, 3);
        if (fd < 0) throw new IOException($"cannot duplicate the listening socket: errno {Marshal.GetLastPInvokeError()}");
        return _socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }

    private async Task AcceptLoopAsync(Socket socket, CancellationToken serving)
    {
        while (!serving.IsCancellationRequested)
        {
            Socket client;
            try { client = await socket.AcceptAsync(serving); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException) { return; }
            _ = AnswerAsync(client, _html, _text);
        }
    }

    private async Task AnswerAsync(Socket client, byte[] html, byte[] text)
    {
        using (client)
        {
            try
            {
                using var timeout = new CancellationTokenSource(ReadTimeout);
                await using var stream = await OpenAsync(client, timeout.Token);
                var head = await ReadHeadAsync(stream, timeout.Token);
                var wantsHtml = AcceptsHtml().IsMatch(head);
                await stream.WriteAsync(wantsHtml ? html : text, timeout.Token);
                await stream.FlushAsync(timeout.Token);
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException
                                          or System.Security.Authentication.AuthenticationException)
            {
                // A client that is slow, gone or refused by TLS gets nothing more; the master carries on.
            }
        }
    }

    /// <summary>The connection's stream: the socket's, or TLS over it when the server has a certificate.</summary>
    private async Task<Stream> OpenAsync(Socket client, CancellationToken cancellation)
    {
        var network = new NetworkStream(client, ownsSocket: false);
        if (tls is null) return network;
        var secure = new SslStream(network, leaveInnerStreamOpen: false);
        await secure.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(tls.ServerCertificate!, tls.ServerCertificateChain),
            EnabledSslProtocols = tls.SslProtocols,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            ClientCertificateRequired = tls.ClientCertificateMode != ClientCertificateMode.NoCertificate,
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) => certificate is null
                ? tls.ClientCertificateMode != ClientCertificateMode.RequireCertificate
                : tls.ClientCertificateValidation?.Invoke(new System.Security.Cryptography.X509Certificates.X509Certificate2(certificate), chain, errors) ?? true,
        }, cancellation);
        return secure;
    }

    /// <summary>The request head (up to 16 KiB): enough to see its Accept header.</summary>
    private static async Task<string> ReadHeadAsync(Stream client, CancellationToken cancellation)
    {
        var buffer = new byte[16 * 1024];
        var length = 0;
        while (length < buffer.Length)
        {
            var n = await client.ReadAsync(buffer.AsMemory(length), cancellation);
            if (n == 0) break;
            length += n;
            if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) >= 0) break;
        }
        return Encoding.Latin1.GetString(buffer, 0, length);
    }

    private static byte[] Response(string contentType, string body)
    {
        var content = Encoding.UTF8.GetBytes(body);
        var head = $"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {contentType}\r\nContent-Length: {content.Length}\r\n" +
                   "Retry-After: 1\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
        return [.. Encoding.ASCII.GetBytes(head), .. content];
    }

    internal static string TextPage(WorkerMessage failure) =>
        $"503 Service Unavailable: the app failed to start ({failure.Reason}).\n\n{failure.Message}\n" +
        (string.IsNullOrEmpty(failure.Traceback) ? "" : $"\n{failure.Traceback.TrimEnd()}\n") +
        "\nMica is watching for changes: save a fix and the app is reloaded.\n";

    internal static string HtmlPage(WorkerMessage failure)
    {
        var traceback = failure.Traceback ?? "";
        var lastLine = traceback.TrimEnd().Split('\n').LastOrDefault(l => l.Length > 0 && !l.StartsWith(' ')) ?? "";
        var (type, message) = lastLine.IndexOf(": ", StringComparison.Ordinal) is var colon and > 0
            ? (lastLine[..colon], lastLine[(colon + 2)..])
            : (failure.Reason ?? "Error", failure.Message ?? "");
        var location = FileAndLine().Matches(traceback).LastOrDefault() is { } m ? $"{m.Groups[1].Value}:{m.Groups[2].Value}" : null;
        static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        return $$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="1">
            <title>503 · {{E(type)}}</title>
            <style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#222}h1{font-size:1.3rem;color:#b00020}
            pre{background:#f6f6f6;padding:1rem;overflow:auto;font:13px/1.4 ui-monospace,monospace}.muted{color:#666}</style>
            </head><body>
            <h1>{{E(type)}}: {{E(message)}}</h1>
            {{(location is null ? "" : $"<p>at <code>{E(location)}</code></p>")}}
            <p>{{E(failure.Message)}}</p>
            {{(traceback.Length == 0 ? "" : $"<pre>{E(traceback.TrimEnd())}</pre>")}}
            <p class="muted">Mica is watching for changes: this page reloads itself every second and shows your app again once a save fixes it.</p>
            </body></html>
            """;
    }

    [GeneratedRegex(@"^accept:[^\r\n]*text/html", RegexOptions.IgnoreCase | RegexOptions.Multiline)]
    private static partial Regex AcceptsHtml();

    [GeneratedRegex("File \"([^\"]+)\", line (\\d+)")]
    private static partial Regex FileAndLine();

    public void Dispose()
    {
        Pause();
        _socket?.Dispose();
    }

}
