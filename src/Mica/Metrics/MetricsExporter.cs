using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mica.Metrics;

/// <summary>
/// <c>--metrics</c>: the master's Prometheus endpoint at <c>--metrics-address</c>:<c>--metrics-port</c>
/// (port 0: any free port; the log says which). Every path answers a GET or HEAD with the metrics
/// (<c>/metrics</c> is what Prometheus asks for by default), other methods get 405.
///
/// A scrape never involves the supervisor loop nor the workers: the loop publishes an immutable
/// <see cref="MetricsView"/> whenever something changed (<see cref="Publish"/>), and the exporter's own
/// tasks render the latest one. A small HTTP/1.1 server of its own, like the reload error page: keep-alive
/// (Prometheus reuses its connection), a request head of at most 16 KiB read within 10 s, no bodies.
/// </summary>
internal sealed class MetricsExporter : IDisposable
{
    private const int MaxHead = 16 * 1024;
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket;
    private readonly CancellationTokenSource _stop = new();
    private MetricsView _view = MetricsView.Empty;

    /// <summary>For the log: <c>http://host:port/metrics</c>.</summary>
    public string Url { get; }

    private MetricsExporter(Socket socket)
    {
        _socket = socket;
        Url = socket.LocalEndPoint switch
        {
            IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"http://[{ip.Address}]:{ip.Port}/metrics",
            IPEndPoint ip => $"http://{ip.Address}:{ip.Port}/metrics",
            var other => $"{other}",
        };
    }

    /// <exception cref="StartupError">when the address cannot be resolved or bound.</exception>
    public static MetricsExporter Start(string host, int port)
    {
        var address = Listener.Resolve(host, "metrics address");
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(address, port));
            socket.Listen(128);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new StartupError($"cannot serve metrics on {host}:{port}: {e.Message}");
        }
        var exporter = new MetricsExporter(socket);
        _ = exporter.AcceptLoopAsync();
        return exporter;
    }

    /// <summary>The supervisor loop: what scrapes return from now on.</summary>
    public void Publish(MetricsView view) => Volatile.Write(ref _view, view);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _socket.AcceptAsync(_stop.Token); }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException) { return; }
            catch (SocketException)
            {
                // A connection reset before it was accepted, or no descriptor left: try again, gently.
                await Task.Delay(10);
                continue;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using (client)
        {
            var buffer = new byte[MaxHead];
            var length = 0;
            try
            {
                while (true)
                {
                    int end;
                    using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
                    {
                        timeout.CancelAfter(ReadTimeout);
                        while ((end = buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8)) < 0)
                        {
                            if (length == buffer.Length)
                            {
                                await client.SendAsync(Response(431, "Request Header Fields Too Large", close: true), SocketFlags.None, _stop.Token);
                                return;
                            }
                            var n = await client.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token);
                            if (n == 0) return;
                            length += n;
                        }
                    }
                    var head = Encoding.Latin1.GetString(buffer, 0, end);
                    var request = RequestHead.Parse(head);
                    var response = request is null ? Response(400, "Bad Request", close: true)
                        : request.Method is not ("GET" or "HEAD") ? Response(405, "Method Not Allowed", request.Close, "Allow: GET, HEAD\r\n")
                        : Metrics(request);
                    await client.SendAsync(response, SocketFlags.None, _stop.Token);
                    if (request is null || request.Close) break;
                    // Pipelined requests: keep what followed this head.
                    length -= end + 4;
                    buffer.AsSpan(end + 4, length).CopyTo(buffer);
                }
                client.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                // A client that is slow or gone, or the master stopping: nothing more to say.
            }
        }
    }

    private byte[] Metrics(RequestHead request)
    {
        var body = Encoding.UTF8.GetBytes(Volatile.Read(ref _view).Render());
        var head = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 200 OK\r\nContent-Type: {PrometheusText.ContentType}\r\nContent-Length: {body.Length}\r\nCache-Control: no-store\r\n" +
            (request.Close ? "Connection: close\r\n" : "") + "\r\n");
        return request.Method == "HEAD" ? head : [.. head, .. body];
    }

    private static byte[] Response(int status, string reason, bool close, string extraHeaders = "") =>
        Encoding.ASCII.GetBytes($"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n{extraHeaders}{(close ? "Connection: close\r\n" : "")}\r\n");

    /// <summary>What the exporter needs of a request: its method, and whether the connection ends after it.</summary>
    internal sealed record RequestHead(string Method, bool Close)
    {
        /// <summary>Null for a head that is not HTTP/1.x. A request with a body closes the connection after the response (its body is not read).</summary>
        public static RequestHead? Parse(string head)
        {
            var lines = head.Split("\r\n");
            var parts = lines[0].Split(' ');
            if (parts.Length != 3 || parts[0].Length == 0 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal)) return null;
            bool? keepAlive = null;
            var body = false;
            foreach (var line in lines.Skip(1))
            {
                var colon = line.IndexOf(':');
                if (colon <= 0) continue;
                var name = line[..colon].Trim();
                var value = line[(colon + 1)..].Trim();
                if (name.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                {
                    var tokens = value.Split(',', StringSplitOptions.TrimEntries);
                    if (tokens.Contains("close", StringComparer.OrdinalIgnoreCase)) keepAlive = false;
                    else if (tokens.Contains("keep-alive", StringComparer.OrdinalIgnoreCase)) keepAlive ??= true;
                }
                else if (name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)
                         || (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) && value != "0"))
                    body = true;
            }
            var close = body || !(keepAlive ?? parts[2] != "HTTP/1.0");
            return new RequestHead(parts[0], close);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _socket.Dispose();
    }
}
