using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

// kestrel_hello PORT [h2]: the benchmark suite's routes (bench/apps/bench_asgi.py lists them) answered
// by Kestrel alone, with no Python: the ceiling every Python server is measured against. Kestrel is set
// up as Mica's workers set it up (inline scheduling, no Server header); one terminal middleware, no
// routing, as lean as a C# app gets. /file sends $BENCH_FILE. The port speaks HTTP/1.1, or with "h2"
// cleartext HTTP/2 with prior knowledge (Kestrel alone cannot offer both on one cleartext port: Mica's
// CleartextHttp2 middleware is what does that).
var port = int.Parse(args[0]);
var protocols = args.Length > 1 && args[1] == "h2" ? HttpProtocols.Http2 : HttpProtocols.Http1;
var file = Environment.GetEnvironmentVariable("BENCH_FILE") ?? "";
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseKestrel(options =>
{
    options.AddServerHeader = false;
    options.ListenLocalhost(port, listen => listen.Protocols = protocols);
});
builder.Services.Configure<SocketTransportOptions>(options => options.UnsafePreferInlineScheduling = true);
var app = builder.Build();
app.UseWebSockets();

var bodies = new Dictionary<string, byte[]>
{
    ["/b10"] = Fill(10), ["/b1k"] = Fill(1024), ["/b10k"] = Fill(10 * 1024), ["/b100k"] = Fill(100 * 1024),
};
var ioBody = Fill(10);

app.Run(async context =>
{
    var path = context.Request.Path.Value ?? "";
    var response = context.Response;
    if (bodies.TryGetValue(path, out var body))
    {
        await Send(response, "text/plain", body);
    }
    else if (path == "/echo")
    {
        var result = await context.Request.BodyReader.ReadAtLeastAsync(int.MaxValue);
        var received = result.Buffer.ToArray();
        context.Request.BodyReader.AdvanceTo(result.Buffer.End);
        await Send(response, "application/octet-stream", received);
    }
    else if (path == "/json")
    {
        await Send(response, "application/json", JsonSerializer.SerializeToUtf8Bytes(new Message("Hello, world!"), MessageJson.Default.Message));
    }
    else if (path is "/io10" or "/io100")
    {
        await Task.Delay(path == "/io10" ? 10 : 100);
        await Send(response, "text/plain", ioBody);
    }
    else if (path == "/file")
    {
        response.ContentType = "application/octet-stream";
        response.ContentLength = new FileInfo(file).Length;
        await response.SendFileAsync(file);
    }
    else if (path == "/ws" && context.WebSockets.IsWebSocketRequest)
    {
        await Echo(await context.WebSockets.AcceptWebSocketAsync());
    }
    else
    {
        response.StatusCode = 404;
    }
});
app.Run();

static byte[] Fill(int size) => Enumerable.Repeat((byte)'x', size).ToArray();

static async Task Send(HttpResponse response, string contentType, byte[] body)
{
    response.ContentType = contentType;
    response.ContentLength = body.Length;
    await response.Body.WriteAsync(body);
}

static async Task Echo(WebSocket socket)
{
    var buffer = new byte[64 * 1024];
    while (true)
    {
        var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
        if (received.MessageType == WebSocketMessageType.Close)
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            return;
        }
        await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, CancellationToken.None);
    }
}

record Message(string message);

[System.Text.Json.Serialization.JsonSerializable(typeof(Message))]
partial class MessageJson : System.Text.Json.Serialization.JsonSerializerContext;
