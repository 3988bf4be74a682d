using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>The same features tested on Starlette and on FastAPI.</summary>
public abstract class FrameworkTests<TServer>(TServer server) : ServerTests<TServer>(server) where TServer : MicaServer
{
    [Fact]
    public async Task Json_endpoint_answers_with_json()
    {
        using var response = await Client.GetAsync("/json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrEmpty(result.Str("framework")));
    }

    [Fact]
    public async Task Path_and_query_parameters_are_parsed()
    {
        var result = await Client.GetJsonAsync("/items/42?q=caf%C3%A9%20au%20lait");
        Assert.Equal(42, result.Int("item_id"));
        Assert.Equal("café au lait", result.Str("q"));
    }

    [Fact]
    public async Task Form_upload_with_a_file_is_parsed()
    {
        var file = new byte[300 * 1024];
        new Random(7).NextBytes(file);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("hello field"), "field");
        var fileContent = new ByteArrayContent(file);
        fileContent.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(fileContent, "file", "data.bin");
        using var response = await Client.PostAsync("/upload", form);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var result = Json.Parse(text);
        Assert.Equal("hello field", result.Str("field"));
        Assert.Equal("data.bin", result.Str("filename"));
        Assert.Equal("application/octet-stream", result.Str("content_type"));
        Assert.Equal(file.Length, result.Int("size"));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(file)), result.Str("sha256"));
    }

    [Fact]
    public async Task StreamingResponse_is_sent_chunked()
    {
        using var response = await Client.GetAsync("/stream", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.TransferEncodingChunked);
        Assert.Equal("chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Background_task_runs_after_the_response()
    {
        var key = Keys.New();
        // The task waits for a later request (/release): the response must not wait for the task.
        using (var response = await Client.PostAsync($"/background?key={key}", null))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync();
        }
        Assert.DoesNotContain($"BACKGROUND DONE {key}", Mica.StdoutLines);
        using (var release = await Client.GetAsync($"/release?key={key}"))
            Assert.Equal(HttpStatusCode.OK, release.StatusCode);
        var status = await Client.GetJsonAsync($"/background-status?key={key}");
        Assert.True(status.Bool("done"), "the background task did not run after the response");
        await Mica.WaitForStdoutAsync($"BACKGROUND DONE {key}");
    }

    [Fact]
    public async Task Exception_handler_returns_the_custom_response()
    {
        using var response = await Client.GetAsync("/teapot");
        Assert.Equal(418, (int)response.StatusCode);
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("short and stout", result.Str("error"));
        Assert.Equal("/teapot", result.Str("path"));
    }

    [Fact]
    public async Task Unknown_route_is_404()
    {
        using var response = await Client.GetAsync("/no/such/route");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}

public sealed class StarletteTests(StarletteServer server) : FrameworkTests<StarletteServer>(server)
{
    [Fact]
    public async Task Int_path_convertor_rejects_non_integers()
    {
        using var response = await Client.GetAsync("/items/abc");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Repeated_query_parameters_are_kept()
    {
        var result = await Client.GetJsonAsync("/items/1?tag=a&tag=b&tag=c");
        Assert.Equal(new[] { "a", "b", "c" }, result.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
    }
}

public sealed class FastApiTests(FastApiServer server) : FastApiTests<FastApiServer>(server);

/// <summary>FastAPI's own features (sync endpoints, models, validation), on top of the shared ones.</summary>
public abstract class FastApiTests<TServer>(TServer server) : FrameworkTests<TServer>(server) where TServer : MicaServer
{
    [Fact]
    public async Task Sync_endpoint_runs_in_a_worker_thread()
    {
        var result = await Client.GetJsonAsync("/sync?value=21");
        Assert.True(result.Bool("sync"));
        Assert.Equal(42, result.Int("doubled"));
        Assert.False(result.Bool("in_main_thread"), "a def endpoint must not run on the event loop thread: " + result);
    }

    [Fact]
    public async Task Many_sync_requests_in_parallel_all_succeed()
    {
        var tasks = Enumerable.Range(0, 40).Select(i => Client.GetJsonAsync($"/sync?value={i}"));
        var results = await Task.WhenAll(tasks);
        Assert.Equal(Enumerable.Range(0, 40).Select(i => i * 2), results.Select(r => r.Int("doubled")));
    }

    [Fact]
    public async Task Json_body_is_validated_into_a_model()
    {
        using var response = await Client.PostAsJsonAsync("/items", new { name = "widget", price = 9.5, tags = new[] { "x", "y" } });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var received = Json.Parse(text).GetProperty("received");
        Assert.Equal("widget", received.Str("name"));
        Assert.Equal(9.5, received.GetProperty("price").GetDouble());
        Assert.Equal(2, received.GetProperty("tags").GetArrayLength());
    }

    [Fact]
    public async Task Invalid_parameters_give_422()
    {
        using var response = await Client.GetAsync("/items/not-a-number");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        using var body = await Client.PostAsJsonAsync("/items", new { name = "no price" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, body.StatusCode);
    }

    [Fact]
    public async Task Missing_query_parameter_is_null()
    {
        var result = await Client.GetJsonAsync("/items/5");
        Assert.Equal(5, result.Int("item_id"));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, result.GetProperty("q").ValueKind);
    }
}
