using System.Net;
using Mica.Tests.Infrastructure;
using Xunit;

namespace Mica.Tests;

/// <summary>rsgi_app.py behind --static-path-mount (route /static) on a <see cref="StaticSite"/>.</summary>
public sealed class RsgiStaticServer : RsgiAppServer
{
    public StaticSite Site { get; } = new();

    protected override async Task<string[]> OptionsAsync() => [.. await base.OptionsAsync(), "--static-path-mount", Site.Public];

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        Site.Dispose();
    }
}

/// <summary>
/// Static files in front of an RSGI app (Granian's test_static_files[rsgi]): served without the
/// app; anything else under the route is a 404 and never reaches the app either.
/// </summary>
public sealed class RsgiStaticFileTests(RsgiStaticServer fixture) : ProtoServerTests<RsgiStaticServer>(fixture)
{
    [Fact]
    public async Task Files_under_the_route_are_served_with_their_type_and_cache_headers()
    {
        using var client = Clients.Http11(Server.Base);
        using var png = await client.GetAsync("/static/image.png");
        Assert.Equal(HttpStatusCode.OK, png.StatusCode);
        Assert.Equal("image/png", png.Content.Headers.ContentType?.MediaType);
        Assert.NotNull(png.Headers.CacheControl);
        Assert.Equal(StaticSite.Png, await png.Content.ReadAsByteArrayAsync());

        using var unicode = await client.GetAsync("/static/" + Uri.EscapeDataString("café menu.txt"));
        Assert.Equal(HttpStatusCode.OK, unicode.StatusCode);
        Assert.Equal(StaticSite.Unicode, await unicode.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_missing_file_or_a_directory_is_a_404_that_never_reaches_the_app()
    {
        // The app answers unknown paths with a 500 (KeyError): a 404 comes from the static handler.
        var mark = Mica.Mark();
        using var client = Clients.Http11(Server.Base);
        using (var missing = await client.GetAsync($"/static/missing-{Keys.New()}.png"))
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using (var directory = await client.GetAsync("/static/sub/"))
            Assert.Equal(HttpStatusCode.NotFound, directory.StatusCode);
        Assert.DoesNotContain(Mica.Lines, l => l.Index > mark && l.Text.Contains("Exception in RSGI application", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Paths_outside_the_route_reach_the_app()
    {
        using var client = Clients.Http11(Server.Base);
        Assert.Equal("héllo wörld ✓", await client.GetStringAsync("/str"));
        var scope = Json.Parse(await client.GetStringAsync("/info/static/image.png"));
        Assert.Equal("/info/static/image.png", scope.Str("path"));
    }
}
