using System.Text.Json;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>proto_asgi:app on --uds DIR/s.sock with --uds-permissions 660.</summary>
public sealed class UdsServer : ProtoServerFixture
{
    private readonly ScratchDir _dir = new();
    public string SocketPath => _dir.File("s.sock");
    protected override string App => "proto_asgi:app";
    protected override Task<string[]> OptionsAsync() => Task.FromResult<string[]>(["--uds", SocketPath, "--uds-permissions", "660"]);

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        _dir.Dispose();
    }
}

/// <summary>Serving on a Unix domain socket: scope, file mode, HTTP/2 over the socket.</summary>
public sealed class UnixSocketTests(UdsServer fixture) : ProtoServerTests<UdsServer>(fixture)
{
    [Fact]
    public async Task Serves_on_the_socket_and_the_scope_server_is_the_path_and_None_and_client_None()
    {
        Assert.Equal("unix:" + Fixture.SocketPath, Server.Url);
        var result = await Curl.OkAsync("--unix-socket", Fixture.SocketPath, "http://localhost/x");
        var scope = result.Json.GetProperty("scope");
        var server = scope.GetProperty("server");
        Assert.True(server.ValueKind == JsonValueKind.Array && server.GetArrayLength() == 2, server.ToString());
        Assert.Equal(Fixture.SocketPath, server[0].GetString());
        Assert.Equal(JsonValueKind.Null, server[1].ValueKind);
        Assert.Equal(JsonValueKind.Null, scope.GetProperty("client").ValueKind);
        Assert.Equal("http", scope.Str("scheme"));
    }

    [Fact]
    public void Uds_permissions_660_gives_the_socket_file_mode_0660()
    {
        var mode = File.GetUnixFileMode(Fixture.SocketPath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, mode);
    }

    [Fact]
    public async Task HTTP2_prior_knowledge_works_over_the_socket()
    {
        var result = await Curl.OkAsync("--unix-socket", Fixture.SocketPath, "--http2-prior-knowledge", "http://localhost/x");
        Assert.Equal("2", result.HttpVersion);
        Assert.Equal("2", result.Json.GetProperty("scope").Str("http_version"));
    }
}

/// <summary>The socket file's life: stale files, a path in use, a regular file, removal on exit; WSGI.</summary>
public sealed class UnixSocketTestsSocketFile
{

    private static async Task<(int ExitCode, IReadOnlyList<string> Stderr, MicaProcess Mica)> RunToExitAsync(string path)
    {
        await using var mica = await MicaProcess.LaunchAsync(["--uds", path, "proto_asgi:app"]);
        var exit = await mica.WaitForExitAsync(TimeSpan.FromSeconds(30));
        return (exit, mica.ServerStderrLines, mica);
    }

    [Fact]
    public async Task A_stale_socket_file_is_replaced()
    {
        using var dir = new ScratchDir();
        var path = dir.File("s.sock");
        // A socket file nobody listens on: bound, then closed without unlinking (a killed server's leftover).
        (await Tool.RunAsync(MicaProcess.Python, ["-c", "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()", path])).Ok();
        var stale = FileIdentity.Of(path);
        Assert.True(stale != default, "the stale socket file was not made");

        await using var server = await ProtoServer.StartAsync("proto_asgi:app", "--uds", path);
        var result = await Curl.OkAsync("--unix-socket", path, "http://localhost/hello");
        Assert.Equal("hello", result.BodyText);   // a socket file nobody listened on now answers: it was replaced
    }

    [Fact]
    public async Task A_path_a_live_server_uses_is_refused_and_the_first_server_keeps_working()
    {
        using var dir = new ScratchDir();
        var path = dir.File("s.sock");
        await using var first = await ProtoServer.StartAsync("proto_asgi:app", "--uds", path);
        var identity = FileIdentity.Of(path);
        Assert.True(identity != default, "no socket file");

        var (exit, stderr, second) = await RunToExitAsync(path);
        var text = string.Join('\n', stderr);
        Assert.True(exit == 1, $"exit code {exit}, expected 1\n{second.Dump()}");
        var errors = stderr.Where(l => l.Contains("[ERROR]", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, $"expected one ERROR line:\n{text}");
        Assert.Contains(path, errors[0]);
        Assert.DoesNotContain(second.StderrLines, l => l.Contains("Spawned worker", StringComparison.Ordinal));

        Assert.Equal(identity, FileIdentity.Of(path));
        var result = await Curl.OkAsync("--unix-socket", path, "http://localhost/hello");
        Assert.Equal("hello", result.BodyText);
        Assert.True(first.IsAlive, first.Mica.Dump());
    }

    [Fact]
    public async Task A_regular_file_at_the_path_is_an_error_and_is_not_deleted()
    {
        using var dir = new ScratchDir();
        var path = dir.File("s.sock");
        await File.WriteAllTextAsync(path, "precious data");
        var (exit, stderr, mica) = await RunToExitAsync(path);
        Assert.True(exit == 1, $"exit code {exit}, expected 1\n{mica.Dump()}");
        var errors = stderr.Where(l => l.Contains("[ERROR]", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 1, $"expected one ERROR line:\n{string.Join('\n', stderr)}");
        Assert.Contains(path, errors[0]);
        Assert.True(File.Exists(path), "the regular file was deleted");
        Assert.Equal("precious data", await File.ReadAllTextAsync(path));
    }

    [Fact]
    public async Task The_socket_file_is_removed_on_SIGTERM()
    {
        using var dir = new ScratchDir();
        var path = dir.File("s.sock");
        var server = await ProtoServer.StartAsync("proto_asgi:app", "--uds", path);
        await using (server)
        {
            await Curl.OkAsync("--unix-socket", path, "http://localhost/hello");
            server.Mica.Signal(Libc.SIGTERM);
            var exit = await server.Mica.WaitForExitAsync(TimeSpan.FromSeconds(20));
            Assert.True(exit == 0, $"exit code {exit}\n{server.Mica.Dump()}");
        }
        Assert.False(Path.Exists(path), "the socket file is still there after a graceful exit");
    }

    [Fact]
    public async Task Wsgi_over_the_socket_has_SERVER_NAME_the_path()
    {
        using var dir = new ScratchDir();
        var path = dir.File("s.sock");
        await using var server = await ProtoServer.StartAsync("proto_wsgi:app", "--interface", "wsgi", "--uds", path);
        var result = await Curl.OkAsync("--unix-socket", path, "http://localhost/w");
        Assert.Equal(path, result.Json.Str("SERVER_NAME"));
        Assert.Equal("/w", result.Json.Str("PATH_INFO"));
    }
}
