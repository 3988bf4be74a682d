using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>
/// <c>--task-impl</c>: what an app may ask of the task its request runs in (its own
/// <c>current_task()</c> and context, cancellation, <c>asyncio.timeout</c>, <c>TaskGroup</c>,
/// anyio's cancel scopes and threads) holds the same under <c>asyncio</c> (an <c>asyncio.Task</c>
/// per request) and <c>rust</c> (Mica's <c>DirectTask</c>). <c>tests/apps/task_impl_app.py</c>.
/// </summary>
public abstract class TaskImplTests<TServer>(TServer server, string taskType) : ServerTests<TServer>(server) where TServer : MicaServer
{
    [Fact]
    public async Task Each_request_has_its_own_current_task_across_awaits()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => Client.GetJsonAsync("/current")));
        Assert.All(results, r => Assert.True(r.Bool("same_after_await"), r.ToString()));
        Assert.All(results, r => Assert.Equal(taskType, r.Str("type")));
        Assert.Equal(20, results.Select(r => r.GetProperty("task").GetInt64()).Distinct().Count());
    }

    [Fact]
    public async Task Context_variables_never_leak_between_requests()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Client.GetJsonAsync($"/contextvar?value-{i}")));
        for (var i = 0; i < results.Length; i++)
        {
            Assert.Equal("unset", results[i].Str("before"));
            Assert.Equal($"value-{i}", results[i].Str("after"));
        }
    }

    [Fact]
    public async Task Asyncio_timeout_cancels_the_await_and_raises_TimeoutError()
    {
        var result = await Client.GetJsonAsync("/timeout");
        Assert.True(result.Bool("timed_out"));
        Assert.Equal(0, result.Int("cancelling"));
    }

    [Fact]
    public async Task Anyio_cancel_scope_cancels_the_request()
    {
        var result = await Client.GetJsonAsync("/anyio-timeout");
        Assert.True(result.Bool("cancel_called"));
        Assert.InRange(result.GetProperty("seconds").GetDouble(), 0.04, 5);
    }

    [Fact]
    public async Task TaskGroup_cancels_the_siblings_of_a_failed_child()
    {
        var result = await Client.GetJsonAsync("/task-group");
        Assert.Equal(["child 2 failed"], result.GetProperty("errors").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task Anyio_worker_threads_run_sync_code_off_the_loop()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Client.GetJsonAsync("/thread")));
        Assert.All(results, r => Assert.Equal("AnyIO worker thread", r.Str("thread")));
        Assert.All(results, r => Assert.NotEqual("AnyIO worker thread", r.Str("loop_thread")));
    }

    [Fact]
    public async Task A_task_cancelled_while_awaiting_gets_CancelledError_and_may_go_on()
    {
        var result = await Client.GetJsonAsync("/cancel-self");
        Assert.True(result.Bool("cancelled"));
        Assert.Equal(0, result.Int("cancelling"));
    }

    [Fact]
    public async Task An_app_exception_is_a_500_with_its_traceback_logged()
    {
        var seen = Mica.StderrLines.Count;
        using var response = await Client.GetAsync("/error");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        await Mica.WaitForStderrAsync("RuntimeError: boom from task_impl_app", after: seen);
    }
}

public sealed class AsyncioTaskImplServer : MicaServer
{
    protected override string App => "task_impl_app:app";
    protected override string[] Options => ["--task-impl", "asyncio"];
}

public sealed class RustTaskImplServer : MicaServer
{
    protected override string App => "task_impl_app:app";
    protected override string[] Options => ["--task-impl", "rust"];
}

public sealed class AsyncioTaskImplTests(AsyncioTaskImplServer server) : TaskImplTests<AsyncioTaskImplServer>(server, "Task");

public sealed class RustTaskImplTests(RustTaskImplServer server) : TaskImplTests<RustTaskImplServer>(server, "DirectTask");

/// <summary>The framework tests again, with every request a <c>DirectTask</c>.</summary>
public sealed class StarletteRustTaskImplServer : MicaServer
{
    protected override string App => "starlette_app:app";
    protected override string[] Options => ["--task-impl", "rust"];
}

public sealed class FastApiRustTaskImplServer : MicaServer
{
    protected override string App => "fastapi_app:app";
    protected override string[] Options => ["--task-impl", "rust"];
}

public sealed class WsFastApiRustTaskImplServer : MicaServer
{
    protected override string App => "ws_fastapi_app:app";
    protected override string[] Options => ["--task-impl", "rust"];
}

public sealed class StarletteRustTaskImplTests(StarletteRustTaskImplServer server) : FrameworkTests<StarletteRustTaskImplServer>(server);

public sealed class FastApiRustTaskImplTests(FastApiRustTaskImplServer server) : FastApiTests<FastApiRustTaskImplServer>(server);

public sealed class FastApiWebSocketRustTaskImplTests(WsFastApiRustTaskImplServer server) : WebSocketFrameworkTests<WsFastApiRustTaskImplServer>(server)
{
    protected override string Framework => "fastapi";
}

public sealed class RsgiRustTaskImplServer : RsgiAppServer
{
    protected override Task<string[]> OptionsAsync() => Task.FromResult<string[]>(["--interface", "rsgi", "--task-impl", "rust"]);
}

public sealed class RsgiResponseRustTaskImplTests(RsgiRustTaskImplServer fixture) : RsgiResponseTests<RsgiRustTaskImplServer>(fixture);
