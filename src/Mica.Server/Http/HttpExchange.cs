using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Mica.Server.Http;

/// <summary>
/// The Kestrel side of one request served by a Python app, whatever the interface: it hands the
/// request to Python (<see cref="Dispatch"/>), then writes the response as the app produces it,
/// step by step (<see cref="ResponseSteps"/>). Kestrel's features are only touched here and, while
/// this task waits for the next step, by the interface's Python thread reading the body; never once
/// the response is complete, because Kestrel reuses them for the connection's next request.
/// </summary>
internal abstract class HttpExchange(ExchangeServices services, IFeatureCollection features)
{
    private static readonly byte[] InternalServerError = "Internal Server Error"u8.ToArray();
    private static readonly byte[] Forbidden = "Forbidden"u8.ToArray();
    private static readonly byte[] ServiceUnavailable = "Service Unavailable"u8.ToArray();

    public IFeatureCollection Features { get; } = features;
    /// <summary>
    /// When Kestrel created the request's context: the start of its duration for <c>--metrics</c>
    /// and <c>--access-log</c> alike (0 when both are off).
    /// </summary>
    private readonly long _createdAt = StartTime(services);
    /// <summary>Answered from a <c>--static-path-mount</c>, not by the app.</summary>
    private bool _static;
    /// <summary>Became a websocket (HTTP/1.1's 101 or HTTP/2's extended CONNECT): its duration is the session's.</summary>
    private bool _upgraded;
    /// <summary>
    /// The Host a trusted proxy forwarded (WSGI's SERVER_NAME and SERVER_PORT follow it). Applying the
    /// proxy headers comes first, so that everything after (static files, scopes, environ) sees
    /// the forwarded client, scheme and Host.
    /// </summary>
    public ForwardedServer? ForwardedServer { get; } = services.Forwarding.Apply(features);
    protected readonly IHttpRequestFeature Request = features.GetRequiredFeature<IHttpRequestFeature>();
    protected readonly IHttpResponseFeature Response = features.GetRequiredFeature<IHttpResponseFeature>();
    private readonly IHttpResponseBodyFeature _responseBody = features.GetRequiredFeature<IHttpResponseBodyFeature>();
    protected readonly IHttpRequestLifetimeFeature Lifetime = features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
    protected readonly ResponseSteps Steps = new();

    protected PipeReader BodyReader => Features.GetRequiredFeature<IRequestBodyPipeFeature>().Reader;

    // The request body's first read, taken before dispatch (see PreReadBody).
    protected ReadResult LastRead;
    protected bool HasRead, BodyComplete;
    /// <summary>The client sent <c>Expect: 100-continue</c>: nothing of the body was read before dispatch.</summary>
    protected bool ExpectsContinue;
    /// <summary>
    /// The status that answers a request whose body could not be read because of the request
    /// itself (<see cref="OnBodyReadFailed"/>); 0 while the body is fine, and when the client is
    /// simply gone.
    /// </summary>
    private int _bodyFailureStatus;

    private static long StartTime(ExchangeServices services)
    {
        services.Metrics?.RequestStarted();
        return services.Metrics is null && services.AccessLog is null ? 0 : Stopwatch.GetTimestamp();
    }

    /// <summary>
    /// Kestrel's <c>ProcessRequestAsync</c>: a request under a static route is answered from the files
    /// (the app never sees it); null if the app should have it.
    /// </summary>
    public Task? TryServeStatic()
    {
        if (services.StaticFiles?.TryServe(Features) is not { } serving) return null;
        _static = true;
        return serving;
    }

    /// <summary>
    /// Kestrel's <c>ProcessRequestAsync</c>, first: a request the app must not see is answered
    /// here, and its connection closed: 503 on a connection beyond <c>--limit-concurrency</c>; 400
    /// for a field name that is not a token or a control character in the target, both of which
    /// Kestrel lets through. Null for any other request.
    /// </summary>
    public Task? TryRefuse()
    {
        if (services.ConnectionLimit is not null && Hosting.ConnectionLimit.IsOverLimit(Features))
            return AnswerWithoutAppAsync(StatusCodes.Status503ServiceUnavailable, ServiceUnavailable);
        if (!Token.AllNamesValid(Request.Headers) || RequestTarget.HasControlCharacters(Request.RawTarget))
            return AnswerWithoutAppAsync(StatusCodes.Status400BadRequest, []);
        return null;
    }

    private async Task AnswerWithoutAppAsync(int status, byte[] body)
    {
        Response.StatusCode = status;
        if (body.Length > 0) Response.Headers.ContentType = "text/plain; charset=utf-8";
        Response.Headers.ContentLength = body.Length;
        Response.Headers.Connection = "close";
        if (body.Length > 0 && !HttpMethods.IsHead(Request.Method)) await _responseBody.Writer.WriteAsync(body);
        services.AccessLog?.Record(AccessLogEntry());
    }

    /// <summary>
    /// Kestrel's <c>DisposeContext</c>: the response is complete and its status final (Kestrel's 500
    /// if the request failed, 499 if the client left before a response).
    /// </summary>
    public void Completed() => services.Metrics?.RequestEnded(_createdAt, Response.StatusCode, _static, _upgraded);

    /// <summary>Hands the request to the app's Python thread; the response arrives as steps.</summary>
    protected abstract void Dispatch();

    /// <summary>The client went away (any thread).</summary>
    protected abstract void OnAborted();

    /// <summary>A <see cref="StepKind.Chunk"/> step was written: <paramref name="ok"/> false if the client is gone.</summary>
    protected abstract void OnChunkFlushed(bool ok);

    /// <summary>A <see cref="StepKind.Continue"/> step was handled: the app's read may start.</summary>
    protected virtual void OnContinueHandled() { }

    /// <summary>A <see cref="StepKind.Upgrade"/> step: runs the upgraded connection to its end.</summary>
    protected virtual Task RunUpgradeAsync(ResponseStep step) => throw new InvalidOperationException("this exchange cannot be upgraded");

    /// <summary>The status when the app ends without a response: 500, or 403 for a websocket it did not accept.</summary>
    protected virtual int FailureStatus => 500;

    /// <summary>After the response: stop any body read still pending on the app's behalf.</summary>
    protected virtual ValueTask StopReadingAsync() => ValueTask.CompletedTask;

    public async Task RunAsync()
    {
        if (!services.Backpressure.Wait(0)) await services.Backpressure.WaitAsync();
        services.Drain.RequestStarted();
        var broken = false;   // once the response failed, the remaining steps are only acknowledged
        try
        {
            PreReadBody();
            if (BodyRefused)
            {
                // What arrived with the head already shows the body malformed: the app never sees it.
                await FailResponseAsync();
                return;
            }
            await using var abort = Lifetime.RequestAborted.UnsafeRegister(static state => ((HttpExchange)state!).OnAborted(), this);
            Dispatch();

            while (true)
            {
                var step = await Steps.NextAsync();
                try
                {
                    if (step.Kind == StepKind.Chunk)
                    {
                        // Acknowledged exactly once, whatever happens: the app's thread waits for it.
                        var ok = false;
                        try
                        {
                            ok = !broken && await WriteChunkAsync(step);
                        }
                        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                        {
                            broken = true;
                            await RefuseAsync(e);
                        }
                        finally
                        {
                            // Released before the app's thread hears of the flush, so that it finds
                            // the chunk's bytes to drop (see DeferredRelease) when it goes on.
                            step.Release();
                            OnChunkFlushed(ok);
                        }
                        continue;
                    }
                    if (step.Kind == StepKind.Continue)
                    {
                        // A read that takes nothing: Kestrel sends "100 Continue" now if the
                        // response has not started, between this task's writes. (A failure shows
                        // again in the app's own read.)
                        try
                        {
                            if (BodyReader.TryRead(out var peeked)) BodyReader.AdvanceTo(peeked.Buffer.Start);
                        }
                        catch (IOException) { }
                        OnContinueHandled();
                        continue;
                    }
                    if (broken) return;
                    switch (step.Kind)
                    {
                        case StepKind.Final: await WriteFinalAsync(step); break;
                        case StepKind.File: await WriteFileAsync(step); break;
                        case StepKind.Upgrade:
                            _upgraded = true;
                            if (step.Headers is not null) HeaderBlock.ApplyTo(Response.Headers, step.Headers.AsSpan(0, step.HeadersLength));
                            await RunUpgradeAsync(step);
                            break;
                        default: await FailResponseAsync(); break;
                    }
                    return;
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    await RefuseAsync(e);
                    return;
                }
                finally
                {
                    if (step.Kind != StepKind.Chunk) step.Release();   // a chunk is released above
                }
            }
        }
        finally
        {
            Steps.Close();
            await StopReadingAsync();
            services.AccessLog?.Record(AccessLogEntry());
            services.Drain.RequestEnded();
            services.Backpressure.Release();
        }
    }

    /// <summary>The access-log line's facts, once the response is done (its status as sent).</summary>
    private AccessLogEntry AccessLogEntry()
    {
        var connection = Features.GetRequiredFeature<IHttpConnectionFeature>();
        var target = RequestTarget.Of(Request);
        var elapsed = Stopwatch.GetElapsedTime(_createdAt);
        return new AccessLogEntry(
            connection.RemoteIpAddress is { } remote ? Addresses.Host(remote) : "-",
            DateTimeOffset.Now - elapsed,
            elapsed.TotalMilliseconds,
            Response.StatusCode,
            target.DecodedPath(),
            target.Query.ToString(),
            Request.Method,
            Request.Scheme,
            Request.Protocol,
            Request.Headers);
    }

    /// <summary>
    /// Kestrel refused what the app sent (bad header bytes, status out of range, body longer than its
    /// content-length): the app cannot be told any more, so log it and fail the response.
    /// </summary>
    private ValueTask RefuseAsync(Exception e)
    {
        Log.Error($"Invalid response for {Request.Method} {Request.RawTarget}: {e.Message}");
        return FailResponseAsync();
    }

    /// <summary>
    /// Takes the body bytes Kestrel already has, so a small POST reaches the app with its body and
    /// needs no round trip. Skipped for <c>Expect: 100-continue</c>: reading would send the 100
    /// before the app has asked for the body.
    /// </summary>
    private void PreReadBody()
    {
        if (Features.Get<IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            BodyComplete = true;
            return;
        }
        if (Request.Headers.Expect.Count > 0)
        {
            ExpectsContinue = true;
            return;
        }
        try
        {
            if (BodyReader.TryRead(out var read))
            {
                LastRead = read;
                HasRead = true;
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException)
        {
            // A malformed body (a bad trailer is an InvalidOperationException) gets its 400 once
            // the app has run; a client already gone is left to the app's first read to find.
            OnBodyReadFailed(e);
        }
    }

    /// <summary>
    /// A read of the request body threw. Kestrel's <see cref="BadHttpRequestException"/> says the
    /// request is at fault, and with which status: a malformed chunked body or one cut short (400),
    /// one over <c>--limit-request-body</c> (413); its chunk parser reports a size too big to hold
    /// as an <see cref="IOException"/> over an <see cref="OverflowException"/>, and an invalid
    /// trailer field as an <see cref="InvalidOperationException"/>: malformed bodies too. The
    /// request then gets that status and its connection is closed, whatever the app did
    /// with the failed read, unless the response has started. Anything else: the client is gone.
    /// </summary>
    protected void OnBodyReadFailed(Exception e) => _bodyFailureStatus = e switch
    {
        BadHttpRequestException bad => bad.StatusCode,
        IOException { InnerException: OverflowException } => StatusCodes.Status400BadRequest,
        // Kestrel checks trailer fields as it adds them: a NUL in one throws this.
        InvalidOperationException => StatusCodes.Status400BadRequest,
        _ => 0,
    };

    /// <summary>The body is malformed, or over the limit (see <see cref="_bodyFailureStatus"/>).</summary>
    private bool BodyRefused => _bodyFailureStatus != 0;

    private bool StatusAllowsBody => Response.StatusCode is not (< 200 or 204 or 304);

    private bool BodyAllowed => StatusAllowsBody && !HttpMethods.IsHead(Request.Method);

    private void StartResponse(in ResponseStep step)
    {
        Response.StatusCode = step.Status;
        if (step.Reason is not null) Response.ReasonPhrase = step.Reason;
        HeaderBlock.ApplyTo(Response.Headers, step.Headers.AsSpan(0, step.HeadersLength));
        if (!services.KeepAlive || IsTunnelAccepted || BodyRefused) Response.Headers.Connection = "close";
    }

    /// <summary>
    /// A 2xx to an HTTP/1 CONNECT tells the client (and any proxy) that the connection is now a
    /// tunnel (RFC 9110 §9.3.6). Mica has no tunnels, so the connection must end with the response:
    /// otherwise what the client sends into "the tunnel" would be read as further requests.
    /// </summary>
    private bool IsTunnelAccepted =>
        Response.StatusCode is >= 200 and < 300 && HttpMethods.IsConnect(Request.Method) && Request.Protocol != "HTTP/2";

    private async ValueTask WriteFinalAsync(ResponseStep step)
    {
        if (step.Headers is not null)
        {
            StartResponse(step);
            // The whole body is known: send it with a length rather than chunked. For HEAD, the
            // length GET would have, when the app gave the body (an empty one says nothing).
            if (Response.Headers.ContentLength is null && (BodyAllowed || (StatusAllowsBody && step.Body.Length > 0)))
                Response.Headers.ContentLength = step.Body.Length;
        }
        if (step.Body.Length > 0 && BodyAllowed) await _responseBody.Writer.WriteAsync(step.Body.Memory);
    }

    private async ValueTask<bool> WriteChunkAsync(ResponseStep step)
    {
        if (step.Headers is not null) StartResponse(step);
        var result = step.Body.Length > 0 && BodyAllowed
            ? await _responseBody.Writer.WriteAsync(step.Body.Memory)
            : await _responseBody.Writer.FlushAsync();
        return !result.IsCanceled && !result.IsCompleted && !Lifetime.RequestAborted.IsCancellationRequested;
    }

    /// <summary>
    /// The body is (the rest of) a file. Kestrel's sockets do not expose sendfile(2), so the file is
    /// read straight into Kestrel's output buffers, off any Python thread and without the GIL.
    /// </summary>
    private async ValueTask WriteFileAsync(ResponseStep step)
    {
        var file = step.File!;
        var count = file.Count;
        if (step.Headers is not null)
        {
            StartResponse(step);
            if (Response.Headers.ContentLength is { } declared) count = Math.Min(count, declared);
            else if (StatusAllowsBody) Response.Headers.ContentLength = count;   // HEAD too: the length GET would send
        }
        if (!BodyAllowed) return;
        var writer = _responseBody.Writer;
        var offset = file.Offset;
        while (count > 0)
        {
            var memory = writer.GetMemory(64 * 1024);
            if (memory.Length > count) memory = memory[..(int)count];
            var n = RandomAccess.Read(file.Handle, memory.Span, offset);
            if (n == 0) throw new InvalidOperationException($"file ended {count} bytes before the response's length");
            writer.Advance(n);
            offset += n;
            count -= n;
            var flushed = await writer.FlushAsync();
            if (flushed.IsCompleted || flushed.IsCanceled) return;
        }
    }

    /// <summary>
    /// No (complete) response from the app: the failure status (<see cref="FailureStatus"/>, or the
    /// one a bad request calls for, which also closes the connection); an abort if the response has
    /// started.
    /// </summary>
    private async ValueTask FailResponseAsync()
    {
        if (Response.HasStarted)
        {
            Lifetime.Abort();
            return;
        }
        var status = BodyRefused ? _bodyFailureStatus : FailureStatus;
        var body = status switch { 500 => InternalServerError, 403 => Forbidden, _ => [] };
        Response.StatusCode = status;
        Response.ReasonPhrase = null;
        Response.Headers.Clear();
        if (body.Length > 0) Response.Headers.ContentType = "text/plain; charset=utf-8";
        Response.Headers.ContentLength = body.Length;
        if (!services.KeepAlive || BodyRefused) Response.Headers.Connection = "close";
        if (body.Length > 0 && !HttpMethods.IsHead(Request.Method)) await _responseBody.Writer.WriteAsync(body);
    }
}
