using System.Text.Json;
using Xunit;

namespace Mica.Tests.Infrastructure;

/// <summary>
/// A class fixture: one mica server for all the tests of a class, started once (IAsyncLifetime)
/// and stopped gracefully at the end. If the server dies (a crash found by one test), the next
/// test gets a fresh one, so that one server bug fails one test and not the whole class.
/// </summary>
public abstract class MicaServer : IAsyncLifetime
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private MicaProcess? _mica;
    private HttpClient? _client;

    protected abstract string App { get; }
    protected virtual string[] Options => [];

    public MicaProcess Mica => _mica ?? throw new InvalidOperationException("server not started");
    /// <summary>A shared client (20 s timeout) with the server's base address.</summary>
    public HttpClient Client => _client ?? throw new InvalidOperationException("server not started");

    public async Task InitializeAsync()
    {
        _mica = await MicaProcess.StartAsync(App, Options);
        _client = _mica.CreateClient();
    }

    /// <summary>True while the master runs and its worker is alive (not a zombie).</summary>
    public static bool IsAlive(MicaProcess mica) => !mica.HasExited && MicaProcess.IsMicaWorker(mica.WorkerPid);

    public async Task EnsureRunningAsync()
    {
        if (_mica is not null && IsAlive(_mica)) return;
        await _lock.WaitAsync();
        try
        {
            if (_mica is not null && IsAlive(_mica)) return;
            if (_mica is not null)
            {
                try { await _mica.WaitForExitAsync(TimeSpan.FromSeconds(10)); }
                catch (TimeoutException) { }
                MicaProcess.SaveLog(_mica, "died");
                _client?.Dispose();
                await _mica.DisposeAsync();
            }
            await InitializeAsync();
        }
        finally
        {
            _lock.Release();
        }
    }

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_mica is not null) await _mica.DisposeAsync();
    }
}

/// <summary>
/// Base of the test classes that share one server: before each test the server is (re)started if
/// needed; after a test during which the server died, the test fails with mica's output.
/// </summary>
public abstract class ServerTests<TServer>(TServer server) : IClassFixture<TServer>, IAsyncLifetime
    where TServer : MicaServer
{
    private MicaProcess? _atStart;

    protected TServer Server => server;
    protected MicaProcess Mica => server.Mica;
    protected HttpClient Client => server.Client;

    public virtual async Task InitializeAsync()
    {
        await server.EnsureRunningAsync();
        _atStart = server.Mica;
    }

    public virtual async Task DisposeAsync()
    {
        if (_atStart is null || MicaServer.IsAlive(_atStart)) return;
        // The master logs why its worker died, then exits: wait for that (bounded) to show it.
        try { await _atStart.WaitForExitAsync(TimeSpan.FromSeconds(10)); }
        catch (TimeoutException) { }
        throw new InvalidOperationException($"mica's worker died during this test\n{_atStart.Dump(60)}");
    }
}

/// <summary>scope_echo:app with --url-path-prefix /api.</summary>
public sealed class EchoServer : MicaServer
{
    public const string Prefix = "/api";
    protected override string App => "scope_echo:app";
    protected override string[] Options => ["--url-path-prefix", Prefix];
}

/// <summary>scope_echo:app with default options, for wire-level tests.</summary>
public sealed class PlainEchoServer : MicaServer
{
    protected override string App => "scope_echo:app";
}

public sealed class RawAppServer : MicaServer
{
    protected override string App => "raw_app:app";
}

/// <summary>wire_echo:app (ASGI): what the app saw of each request, for the corpus and the fuzzer.</summary>
public sealed class WireEchoServer : MicaServer
{
    protected override string App => "wire_echo:app";
}

public sealed class LifespanServer : MicaServer
{
    protected override string App => "lifespan_app:app";
}

public sealed class StarletteServer : MicaServer
{
    protected override string App => "starlette_app:app";
}

public sealed class FastApiServer : MicaServer
{
    protected override string App => "fastapi_app:app";
}

public static class Json
{
    public static JsonElement Parse(string text)
    {
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }

    public static JsonElement Parse(byte[] utf8)
    {
        using var doc = JsonDocument.Parse(utf8);
        return doc.RootElement.Clone();
    }

    public static async Task<JsonElement> GetJsonAsync(this HttpClient client, string uri)
    {
        using var response = await client.GetAsync(uri);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {uri}: {(int)response.StatusCode} {text}");
        return Parse(text);
    }

    public static string Str(this JsonElement e, string name) => e.GetProperty(name).GetString()!;
    public static int Int(this JsonElement e, string name) => e.GetProperty(name).GetInt32();
    public static long Long(this JsonElement e, string name) => e.GetProperty(name).GetInt64();
    public static bool Bool(this JsonElement e, string name) => e.GetProperty(name).GetBoolean();
}

public static class Keys
{
    /// <summary>A unique tag for one test's log lines and per-request state in the apps.</summary>
    public static string New() => Guid.NewGuid().ToString("N")[..12];
}

/// <summary>scope_echo:app with keep-alive off and a 1 s header read timeout.</summary>
public sealed class NoKeepAliveServer : MicaServer
{
    protected override string App => "scope_echo:app";
    protected override string[] Options => ["--no-http1-keep-alive", "--http1-header-read-timeout", "1000"];
}
