using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

// kestrel_hello PORT: "Hello, world!" from a terminal middleware, on Kestrel set up as Mica's
// workers set it up (inline scheduling, HTTP/1.1 and HTTP/2, no Server header).
var port = int.Parse(args[0]);
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseKestrel(options =>
{
    options.AddServerHeader = false;
    options.ListenLocalhost(port);
});
builder.Services.Configure<SocketTransportOptions>(options => options.UnsafePreferInlineScheduling = true);
var app = builder.Build();
var hello = "Hello, world!"u8.ToArray();
app.Run(async context =>
{
    context.Response.ContentType = "text/plain";
    context.Response.ContentLength = hello.Length;
    await context.Response.Body.WriteAsync(hello);
});
app.Run();
