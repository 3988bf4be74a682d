using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>Shared by the WSGI framework tests: a multipart upload and the log line naming the interface.</summary>
public abstract class WsgiFrameworkTests<TServer>(TServer server) : ServerTests<TServer>(server) where TServer : MicaServer
{
    [Fact]
    public async Task Served_with_the_wsgi_interface()
    {
        await Mica.WaitForStderrAsync("interface wsgi");
    }

    protected async Task UploadAsync(string path, int size)
    {
        var file = new byte[size];
        new Random(size).NextBytes(file);
        using var form = new MultipartFormDataContent();
        form.Add(new StringContent("hello field"), "field");
        var fileContent = new ByteArrayContent(file);
        fileContent.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(fileContent, "file", "data.bin");
        using var client = Mica.CreateClient(TimeSpan.FromSeconds(60));
        using var response = await client.PostAsync(path, form);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        var result = Json.Parse(text);
        Assert.Equal("hello field", result.Str("field"));
        Assert.Equal("data.bin", result.Str("filename"));
        Assert.Equal("application/octet-stream", result.Str("content_type"));
        Assert.Equal(file.Length, result.Int("size"));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(file)), result.Str("sha256"));
    }

    /// <summary>JSON with a Content-Length (JsonContent would be sent chunked, which Bottle and Falcon do not read).</summary>
    protected static StringContent JsonBody(object value) =>
        new(System.Text.Json.JsonSerializer.Serialize(value), System.Text.Encoding.UTF8, "application/json");

    protected async Task FormAsync(string path)
    {
        using var content = new FormUrlEncodedContent([new("name", "José & co"), new("colour", "red"), new("colour", "blue")]);
        using var response = await Client.PostAsync(path, content);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        var result = Json.Parse(text);
        Assert.Equal("José & co", result.Str("name"));
        Assert.Equal(["red", "blue"], result.GetProperty("colours").EnumerateArray().Select(c => c.GetString()));
    }

    protected async Task StreamAsync(string path, string expected)
    {
        using var response = await Client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.TransferEncodingChunked == true, "a streamed response without Content-Length is chunked");
        Assert.Equal(expected, await response.Content.ReadAsStringAsync());
    }
}

public abstract class FlaskTests<TServer>(TServer server) : WsgiFrameworkTests<TServer>(server) where TServer : MicaServer
{
    [Fact]
    public async Task Json_route()
    {
        using var response = await Client.GetAsync("/json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("flask", result.Str("framework"));
        Assert.Equal("", result.Str("script_name"));
    }

    [Fact]
    public async Task Path_and_query_parameters_are_parsed()
    {
        var result = await Client.GetJsonAsync("/items/42?q=caf%C3%A9%20au%20lait&tag=a&tag=b");
        Assert.Equal(42, result.Int("item_id"));
        Assert.Equal("café au lait", result.Str("q"));
        Assert.Equal(["a", "b"], result.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public Task Form_post_is_parsed() => FormAsync("/form");

    [Fact]
    public Task File_upload_via_multipart() => UploadAsync("/upload", 300 * 1024);

    /// <summary>The same upload written in pieces with pauses, as a slow client would (werkzeug reads it with read(n)).</summary>
    [Fact]
    public async Task File_upload_sent_in_pieces()
    {
        const string boundary = "MicaTestBoundary";
        var file = new byte[300 * 1024];
        new Random(3).NextBytes(file);
        byte[][] pieces =
        [
            System.Text.Encoding.ASCII.GetBytes($"--{boundary}\r\nContent-Disposition: form-data; name=field\r\n\r\nhello field\r\n"),
            System.Text.Encoding.ASCII.GetBytes($"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=data.bin\r\nContent-Type: application/octet-stream\r\n\r\n"),
            file[..100_000], file[100_000..],
            System.Text.Encoding.ASCII.GetBytes($"\r\n--{boundary}--\r\n"),
        ];
        var key = Keys.New();
        await using var connection = await RawConnection.ConnectAsync(Mica);
        await connection.SendAsync($"POST /upload HTTP/1.1\r\nHost: localhost\r\nX-Announce: {key}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                                   + $"Content-Length: {pieces.Sum(p => p.Length)}\r\n\r\n");
        await Mica.WaitForStdoutAsync($"FLASK REQUEST {key}");   // the app runs: each piece arrives on its own
        foreach (var piece in pieces)
        {
            await connection.SendAsync(piece);
            await Task.Delay(50);
        }
        var response = await connection.ReadResponseAsync();
        Assert.True(response.Status == 200, $"{response.Status}: {response.BodyText}");
        var result = Json.Parse(response.Body);
        Assert.Equal("hello field", result.Str("field"));
        Assert.Equal(file.Length, result.Int("size"));
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(file)), result.Str("sha256"));
    }

    [Fact]
    public async Task Json_post_is_echoed()
    {
        using var response = await Client.PostAsync("/echo-json", JsonBody(new { a = 1, b = new[] { "x", "y" } }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("received");
        Assert.Equal(1, received.Int("a"));
        Assert.Equal(2, received.GetProperty("b").GetArrayLength());
    }

    /// <summary>Werkzeug reads a body without Content-Length because wsgi.input_terminated is True.</summary>
    [Fact]
    public async Task Chunked_json_post_is_read()
    {
        using var response = await Client.PostAsync("/echo-json", System.Net.Http.Json.JsonContent.Create(new { a = 2, b = new[] { "z" } }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var received = Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("received");
        Assert.Equal(2, received.Int("a"));
    }

    [Fact]
    public Task Stream_with_context_is_streamed() =>
        StreamAsync("/stream?prefix=p", "p-0\np-1\np-2\np-3\np-4\n");

    [Fact]
    public async Task Missing_route_is_404()
    {
        using var response = await Client.GetAsync("/no/such/route");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Error_handler_returns_its_response()
    {
        using var response = await Client.GetAsync("/teapot");
        Assert.Equal(418, (int)response.StatusCode);
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("short and stout", result.Str("error"));
        Assert.Equal("/teapot", result.Str("path"));
    }

    [Fact]
    public async Task Unhandled_view_error_is_flasks_500_and_is_logged()
    {
        var mark = Mica.Mark();
        using var response = await Client.GetAsync("/crash");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        await Mica.WaitForStderrAsync("flask view crashed", after: mark);
        using var ok = await Client.GetAsync("/json");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }
}

public sealed class FlaskWsgiTests(FlaskWsgiServer server) : FlaskTests<FlaskWsgiServer>(server);

public sealed class FlaskWsgiAutoDetectedTests(FlaskAutoServer server) : FlaskTests<FlaskAutoServer>(server);

public abstract class DjangoTests<TServer>(TServer server) : WsgiFrameworkTests<TServer>(server), IDisposable where TServer : MicaServer
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task View_answers_with_json()
    {
        var result = await Client.GetJsonAsync("/json");
        Assert.Equal("django", result.Str("framework"));
        Assert.Equal("/json", result.Str("path"));
        Assert.Equal("", result.Str("script_name"));
    }

    [Fact]
    public async Task Path_and_query_parameters_are_parsed()
    {
        var result = await Client.GetJsonAsync("/items/7?q=caf%C3%A9");
        Assert.Equal(7, result.Int("item_id"));
        Assert.Equal("café", result.Str("q"));
    }

    [Fact]
    public Task Csrf_exempt_form_post_is_parsed() => FormAsync("/form");

    [Fact]
    public async Task Form_post_without_csrf_token_is_refused()
    {
        using var content = new FormUrlEncodedContent([new("name", "x")]);
        using var response = await Client.PostAsync("/form-protected", content);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public Task File_upload_via_request_files() => UploadAsync("/upload", 3 * 1024 * 1024);

    [Fact]
    public Task Streaming_http_response_is_streamed() => StreamAsync("/stream", "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n");

    [Fact]
    public async Task File_response_goes_through_wsgi_file_wrapper()
    {
        var data = new byte[5 * 1024 * 1024 + 3];
        new Random(5).NextBytes(data);
        var path = Path.Combine(_dir.Path, "django-file.bin");
        await File.WriteAllBytesAsync(path, data);
        var before = (await Client.GetJsonAsync("/stats")).Int("file_wrapper_calls");

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await Client.GetAsync($"/file?path={Uri.EscapeDataString(path)}", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(data.Length, response.Content.Headers.ContentLength);
        await using var body = await response.Content.ReadAsStreamAsync(cts.Token);
        var (sha, length) = await Wsgi.HashAsync(body, cts.Token);
        Assert.Equal(data.Length, length);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), sha);
        Assert.Equal(before + 1, (await Client.GetJsonAsync("/stats")).Int("file_wrapper_calls"));
    }

    [Fact]
    public async Task Missing_route_uses_the_custom_404()
    {
        using var response = await Client.GetAsync("/no/such/route");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("not found", Json.Parse(await response.Content.ReadAsStringAsync()).Str("error"));
    }

    [Fact]
    public async Task View_error_uses_the_custom_500_and_is_logged()
    {
        var mark = Mica.Mark();
        using var response = await Client.GetAsync("/crash");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("custom 500", Json.Parse(await response.Content.ReadAsStringAsync()).Str("error"));
        await Mica.WaitForStderrAsync("django view crashed", after: mark);
    }
}

public sealed class DjangoWsgiTests(DjangoWsgiServer server) : DjangoTests<DjangoWsgiServer>(server);

public sealed class DjangoWsgiAutoDetectedTests(DjangoAutoServer server) : DjangoTests<DjangoAutoServer>(server);

public abstract class BottleTests<TServer>(TServer server) : WsgiFrameworkTests<TServer>(server) where TServer : MicaServer
{
    [Theory]
    [InlineData("/hello/world", "Hello, world!")]
    [InlineData("/hello/caf%C3%A9", "Hello, café!")]
    public async Task Route_parameter_is_passed(string target, string expected)
    {
        using var response = await Client.GetAsync(target);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Dict_is_returned_as_json()
    {
        using var response = await Client.GetAsync("/json?q=caf%C3%A9");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var result = Json.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("bottle", result.Str("framework"));
        Assert.Equal("café", result.Str("q"));
    }

    [Fact]
    public async Task Json_post_is_echoed()
    {
        using var response = await Client.PostAsync("/echo-json", JsonBody(new { value = 42 }));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(42, Json.Parse(await response.Content.ReadAsStringAsync()).GetProperty("received").Int("value"));
    }

    [Fact]
    public async Task Int_filter_rejects_non_integers()
    {
        using var response = await Client.GetAsync("/items/abc");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(5, (await Client.GetJsonAsync("/items/5")).Int("item_id"));
    }
}

public sealed class BottleWsgiTests(BottleWsgiServer server) : BottleTests<BottleWsgiServer>(server);

public sealed class BottleWsgiAutoDetectedTests(BottleAutoServer server) : BottleTests<BottleAutoServer>(server);

public abstract class FalconTests<TServer>(TServer server) : WsgiFrameworkTests<TServer>(server) where TServer : MicaServer
{
    [Fact]
    public async Task Resource_on_post_then_on_get()
    {
        var id = Keys.New();
        using (var post = await Client.PostAsync($"/things/{id}", JsonBody(new { value = "stored value" })))
        {
            Assert.Equal(HttpStatusCode.Created, post.StatusCode);
            Assert.Equal("stored value", Json.Parse(await post.Content.ReadAsStringAsync()).Str("stored"));
        }
        var result = await Client.GetJsonAsync($"/things/{id}");
        Assert.Equal(id, result.Str("id"));
        Assert.Equal("stored value", result.Str("value"));
        Assert.Equal("falcon", result.Str("framework"));
    }

    [Fact]
    public async Task Missing_resource_is_404()
    {
        using var response = await Client.GetAsync($"/things/missing-{Keys.New()}");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var none = await Client.GetAsync("/no/such/route");
        Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
    }

    [Fact]
    public async Task Query_parameter_is_read()
    {
        Assert.Equal("hello mica", await Client.GetStringAsync("/hello?name=mica"));
        Assert.Equal("hello falcon", await Client.GetStringAsync("/hello"));
    }
}

public sealed class FalconWsgiTests(FalconWsgiServer server) : FalconTests<FalconWsgiServer>(server);

public sealed class FalconWsgiAutoDetectedTests(FalconAutoServer server) : FalconTests<FalconAutoServer>(server);
