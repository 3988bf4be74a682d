using System.Net;
using Mica.Server.Http;
using Microsoft.Extensions.Primitives;
using Xunit;

namespace Mica.Tests;

/// <summary><c>Addresses.TryParse</c>: the strict address syntax options and proxy headers are read with.</summary>
public sealed class AddressParsingTests
{
    [Theory]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("0.0.0.0", "0.0.0.0")]
    [InlineData("255.255.255.255", "255.255.255.255")]
    [InlineData("::1", "::1")]
    [InlineData("2001:DB8::1", "2001:db8::1")]
    [InlineData("::ffff:192.0.2.1", "192.0.2.1")]          // IPv4-mapped: its IPv4 form
    [InlineData("2001:db8::", "2001:db8::")]
    public void Accepts_IPv4_and_IPv6(string text, string expected)
    {
        Assert.True(Addresses.TryParse(text, out var address));
        Assert.Equal(IPAddress.Parse(expected), address);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1")]                 // IPAddress.TryParse takes these three for 0.0.0.1, 127.0.0.1, 1.2.0.3
    [InlineData("127.1")]
    [InlineData("1.2.3")]
    [InlineData("0x7f.0.0.1")]
    [InlineData("01.2.3.4")]          // leading zero: octal to some parsers
    [InlineData("1.2.3.256")]
    [InlineData("1.2.3.4.5")]
    [InlineData("1.2.3.")]
    [InlineData("1.2.3.4 ")]
    [InlineData("fe80::1%eth0")]     // zones mean nothing across hosts
    [InlineData("::g")]
    [InlineData("localhost")]
    [InlineData("unknown")]
    public void Rejects_anything_else(string text)
    {
        Assert.False(Addresses.TryParse(text, out _));
    }
}

/// <summary><c>TrustedProxies</c>: <c>--forwarded-allow-ips</c>'s list and who it trusts.</summary>
public sealed class TrustedProxiesTests
{
    private static bool Trusts(string list, string? peer) =>
        TrustedProxies.Parse(list).Trusts(peer is null ? null : IPAddress.Parse(peer));

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("::ffff:127.0.0.1", true)]      // a dual-stack socket's IPv4 peer
    [InlineData("127.0.0.2", false)]
    [InlineData("::1", false)]                   // uvicorn's default names IPv4 loopback only
    [InlineData("10.0.0.1", false)]
    public void Default_trusts_only_127_0_0_1(string peer, bool trusted)
    {
        Assert.Equal(trusted, Trusts(TrustedProxies.Default, peer));
    }

    [Theory]
    [InlineData("10.0.0.0/8", "10.255.1.2", true)]
    [InlineData("10.0.0.0/8", "::ffff:10.1.2.3", true)]
    [InlineData("10.0.0.0/8", "11.0.0.1", false)]
    [InlineData("192.168.1.0/24", "192.168.1.255", true)]
    [InlineData("192.168.1.0/24", "192.168.2.1", false)]
    [InlineData("192.0.2.7/32", "192.0.2.7", true)]
    [InlineData("192.0.2.7/32", "192.0.2.8", false)]
    [InlineData("0.0.0.0/0", "203.0.113.9", true)]
    [InlineData("0.0.0.0/0", "2001:db8::1", false)]
    [InlineData("2001:db8::/32", "2001:db8:1::5", true)]
    [InlineData("2001:db8::/32", "2001:db9::1", false)]
    [InlineData("2001:db8::/32", "10.0.0.1", false)]
    [InlineData("::1", "::1", true)]
    [InlineData("::1", "127.0.0.1", false)]
    [InlineData("::ffff:10.0.0.0/104", "10.1.2.3", true)]      // an IPv4-mapped network is its IPv4 network
    [InlineData("::ffff:10.0.0.0/104", "11.1.2.3", false)]
    [InlineData(" 10.0.0.1 , ,192.168.0.0/16 ", "192.168.7.7", true)]
    [InlineData(" 10.0.0.1 , ,192.168.0.0/16 ", "10.0.0.1", true)]
    [InlineData("10.0.0.1,2001:db8::/48", "2001:db8:0:1::1", true)]
    public void Addresses_and_networks_match_IPv4_and_IPv6(string list, string peer, bool trusted)
    {
        Assert.Equal(trusted, Trusts(list, peer));
    }

    [Theory]
    [InlineData("*")]
    [InlineData("127.0.0.1, *")]
    public void Star_trusts_every_peer(string list)
    {
        Assert.True(TrustedProxies.Parse(list).TrustsAll);
        Assert.True(Trusts(list, "203.0.113.9"));
        Assert.True(Trusts(list, "2001:db8::1"));
    }

    [Theory]
    [InlineData("10.0.0.1")]
    [InlineData("")]
    public void A_Unix_socket_peer_is_always_trusted(string list)
    {
        Assert.True(Trusts(list, null));
    }

    [Fact]
    public void An_empty_list_trusts_no_IP_peer()
    {
        Assert.False(Trusts("", "127.0.0.1"));
    }

    [Theory]
    [InlineData("localhost", "is not an IP address")]
    [InlineData("unix:/run/app.sock", "is not an IP address")]
    [InlineData("127.1", "is not an IP address")]
    [InlineData("01.2.3.4", "is not an IP address")]
    [InlineData("10.0.0.1, nope", "'nope'")]
    [InlineData("10.0.0.1/8", "host bits set (the network is 10.0.0.0/8)")]
    [InlineData("2001:db8::1/32", "host bits set (the network is 2001:db8::/32)")]
    [InlineData("10.0.0.0/33", "between 0 and 32")]
    [InlineData("::/129", "between 0 and 128")]
    [InlineData("10.0.0.0/", "is not an IP address")]
    [InlineData("/8", "is not an IP address")]
    [InlineData("10.0.0.0/x", "is not an IP address")]
    [InlineData("10.0.0.0/-1", "is not an IP address")]
    [InlineData("10.0.0.0/ 8", "is not an IP address")]
    [InlineData("fe80::1%eth0", "is not an IP address")]
    public void Rejects_what_is_not_an_address_or_a_network(string list, string message)
    {
        Assert.False(TrustedProxies.TryParse(list, out _, out var error));
        Assert.Contains(message, error);
    }
}

/// <summary><c>ForwardedHeaders.Resolve</c>: what a request's proxy headers say, given its peer and the trusted list.</summary>
public sealed class ForwardedHeadersTests
{
    private const string Peer = "127.0.0.1";

    /// <summary>"client:port scheme host", with "-" for what the headers leave as the connection has it.</summary>
    private static string Resolve(string? xff = null, string? xfp = null, string? xfh = null, string? forwarded = null,
        string trusted = TrustedProxies.Default, string? peer = Peer) =>
        Show(ForwardedHeaders.Resolve(peer is null ? null : IPAddress.Parse(peer), TrustedProxies.Parse(trusted),
            Values(xff), Values(xfp), Values(xfh), Values(forwarded)));

    private static StringValues Values(string? header) => header is null ? StringValues.Empty : new StringValues(header);

    private static string Show(Forwarding f)
    {
        var client = f.Client is null ? "-" : (f.Client.ToString().Contains(':') ? $"[{f.Client}]" : f.Client.ToString()) + ":" + f.ClientPort;
        return $"{client} {f.Scheme ?? "-"} {f.Host ?? "-"}";
    }

    // ------------------------------------------------------------------ X-Forwarded-For

    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7:0 - -")]
    [InlineData(" 203.0.113.7 ", "203.0.113.7:0 - -")]
    [InlineData("203.0.113.7:5000", "203.0.113.7:5000 - -")]
    [InlineData("2001:db8::1", "[2001:db8::1]:0 - -")]
    [InlineData("2001:db8::", "[2001:db8::]:0 - -")]
    [InlineData("[2001:db8::1]", "[2001:db8::1]:0 - -")]
    [InlineData("[2001:db8::1]:80", "[2001:db8::1]:80 - -")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7:0 - -")]
    public void A_trusted_peer_sets_the_client_port_0_unless_given(string xff, string expected)
    {
        Assert.Equal(expected, Resolve(xff));
    }

    [Theory]
    [InlineData("192.0.2.1")]
    [InlineData("::1")]
    public void An_untrusted_peer_is_ignored_entirely(string peer)
    {
        Assert.Equal("- - -", Resolve("203.0.113.7", "https", "example.com", "for=198.51.100.1", peer: peer));
    }

    [Fact]
    public void The_client_is_the_rightmost_address_not_trusted()
    {
        // client 203.0.113.7 → 198.51.100.2 (not ours) → 10.0.0.3 (ours) → 127.0.0.1 (ours, the peer)
        Assert.Equal("198.51.100.2:0 - -", Resolve("203.0.113.7, 198.51.100.2, 10.0.0.3", trusted: "127.0.0.1, 10.0.0.0/8"));
        Assert.Equal("203.0.113.7:0 - -", Resolve("203.0.113.7, 198.51.100.2, 10.0.0.3", trusted: "127.0.0.1, 10.0.0.0/8, 198.51.100.0/24"));
    }

    [Fact]
    public void An_address_a_client_puts_in_front_is_not_believed()
    {
        // The proxy appended the real client; what the client sent itself stays to the left.
        Assert.Equal("203.0.113.7:0 - -", Resolve("6.6.6.6, 203.0.113.7"));
    }

    [Fact]
    public void When_every_address_is_trusted_the_leftmost_is_the_client()
    {
        Assert.Equal("10.0.0.1:0 - -", Resolve("10.0.0.1, 10.0.0.2", trusted: "127.0.0.1, 10.0.0.0/8"));
    }

    [Fact]
    public void Star_takes_the_leftmost()
    {
        Assert.Equal("1.1.1.1:0 - -", Resolve("1.1.1.1, 2.2.2.2", trusted: "*", peer: "192.0.2.1"));
    }

    [Fact]
    public void Several_header_lines_are_one_list()
    {
        var f = ForwardedHeaders.Resolve(IPAddress.Loopback, TrustedProxies.Parse("127.0.0.1, 10.0.0.0/8"),
            new StringValues(["1.1.1.1, 10.0.0.9", "10.0.0.1"]), default, default, default);
        Assert.Equal("1.1.1.1:0 - -", Show(f));
    }

    [Fact]
    public void A_Unix_socket_peer_is_trusted()
    {
        Assert.Equal("203.0.113.7:0 https -", Resolve("203.0.113.7", "https", trusted: "10.0.0.1", peer: null));
    }

    [Theory]
    [InlineData("")]
    [InlineData(",")]
    [InlineData("unknown")]
    [InlineData("_hidden")]
    [InlineData("1.2.3")]
    [InlineData("203.0.113.7:99999")]
    [InlineData("203.0.113.7:")]
    [InlineData("[203.0.113.7]")]
    [InlineData("[2001:db8::1")]
    [InlineData("[2001:db8::1]x")]
    [InlineData("example.com")]
    public void A_bad_address_leaves_the_client_alone(string xff)
    {
        Assert.Equal("- - -", Resolve(xff));
    }

    [Fact]
    public void A_bad_address_ends_the_walk_at_the_last_good_one()
    {
        Assert.Equal("10.0.0.1:0 - -", Resolve("203.0.113.7, garbage, 10.0.0.1", trusted: "127.0.0.1, 10.0.0.0/8"));
    }

    // ------------------------------------------------------------------ X-Forwarded-Proto and -Host

    [Theory]
    [InlineData("https", "https")]
    [InlineData("http", "http")]
    [InlineData("HTTPS", "https")]
    [InlineData("wss", "https")]       // the scopes turn it back into wss for websockets
    [InlineData("ws", "http")]
    [InlineData(" https ", "https")]
    [InlineData("ftp", "-")]
    [InlineData("", "-")]
    [InlineData("https http", "-")]
    public void Proto_sets_the_scheme_without_a_client(string xfp, string scheme)
    {
        Assert.Equal($"- {scheme} -", Resolve(xfp: xfp));
    }

    [Fact]
    public void Items_pair_up_from_the_right_one_per_proxy()
    {
        // CDN (10.0.0.1) reached over https, it reached nginx over http; nginx appended both.
        Assert.Equal("203.0.113.7:0 https cdn.example", Resolve("203.0.113.7, 10.0.0.1", "https, http", "cdn.example, internal",
            trusted: "127.0.0.1, 10.0.0.0/8"));
        // Not trusting the CDN: the client is the CDN, as nginx saw it.
        Assert.Equal("10.0.0.1:0 http internal", Resolve("203.0.113.7, 10.0.0.1", "https, http", "cdn.example, internal"));
    }

    [Fact]
    public void A_single_proto_goes_with_the_nearest_proxy_and_stays()
    {
        Assert.Equal("203.0.113.7:0 https -", Resolve("203.0.113.7, 10.0.0.1", "https", trusted: "127.0.0.1, 10.0.0.0/8"));
    }

    [Theory]
    [InlineData("example.com", "example.com")]
    [InlineData("example.com:8443", "example.com:8443")]
    [InlineData("EXAMPLE.com", "EXAMPLE.com")]
    [InlineData("192.0.2.1:80", "192.0.2.1:80")]
    [InlineData("[2001:db8::1]:8080", "[2001:db8::1]:8080")]
    [InlineData("[2001:db8::1]", "[2001:db8::1]")]
    [InlineData("xn--bcher-kva.example", "xn--bcher-kva.example")]
    [InlineData("bad host", "-")]
    [InlineData("a/b", "-")]
    [InlineData("user@example.com", "-")]
    [InlineData("example.com:99999", "-")]
    [InlineData("example.com:", "-")]
    [InlineData("example.com:80:80", "-")]
    [InlineData(":80", "-")]
    [InlineData("[2001:db8::1", "-")]
    [InlineData("[example.com]", "-")]
    [InlineData("", "-")]
    public void Host_is_taken_when_it_is_a_valid_host(string xfh, string host)
    {
        Assert.Equal($"- - {host}", Resolve(xfh: xfh));
    }

    [Theory]
    [InlineData("example.com", "example.com", -1)]
    [InlineData("example.com:8443", "example.com", 8443)]
    [InlineData("[2001:db8::1]:8080", "2001:db8::1", 8080)]
    [InlineData("[::1]", "::1", -1)]
    public void Host_splits_into_name_and_port(string host, string name, int port)
    {
        Assert.True(ForwardedHeaders.TryParseHost(host, out var n, out var p));
        Assert.Equal(name, n.ToString());
        Assert.Equal(port, p);
    }

    // ------------------------------------------------------------------ Forwarded (RFC 7239)

    [Theory]
    [InlineData("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60:0 http -")]
    [InlineData("For=\"[2001:db8:cafe::17]:4711\"", "[2001:db8:cafe::17]:4711 - -")]
    [InlineData("for=\"192.0.2.43:47011\";PROTO=https;Host=\"example.com:8443\"", "192.0.2.43:47011 https example.com:8443")]
    [InlineData("for=192.0.2.43, for=198.51.100.17", "198.51.100.17:0 - -")]
    [InlineData("for=192.0.2.43 , for=198.51.100.17;proto=https", "198.51.100.17:0 https -")]
    [InlineData("proto=https;host=example.com", "- https example.com")]
    [InlineData("for=\"192.0.2.43:_abc\"", "192.0.2.43:0 - -")]             // obfuscated port
    [InlineData("for=unknown;proto=https", "- https -")]                     // unknown node: no client, the rest applies
    [InlineData("for=_hidden;host=example.com", "- - example.com")]
    [InlineData("host=\"ex\\ample.com\"", "- - example.com")]              // quoted-pair
    [InlineData("for=\"[2001:db8::1]\";host=\"a,b\"", "[2001:db8::1]:0 - -")] // a comma in quotes does not split; "a,b" is no host
    [InlineData(";for=192.0.2.60;;ext=\"x;y\"", "192.0.2.60:0 - -")]       // empty pairs and unknown parameters
    [InlineData("for=2001:db8::1", "[2001:db8::1]:0 - -")]                  // unquoted IPv6: not RFC 7239, but unambiguous
    public void Forwarded_elements_give_for_proto_and_host(string forwarded, string expected)
    {
        Assert.Equal(expected, Resolve(forwarded: forwarded));
    }

    [Theory]
    [InlineData("for=\"192.0.2.60")]                  // unterminated quoted string
    [InlineData("for=192.0.2.60;for=198.51.100.1")]   // a parameter twice
    [InlineData("for")]
    [InlineData("for 192.0.2.60")]
    [InlineData("=192.0.2.60")]
    [InlineData("for=\"192.0.2.60\"x")]
    [InlineData("for=192.0.2.60 proto=https")]
    [InlineData("")]
    public void A_malformed_element_is_ignored(string forwarded)
    {
        Assert.Equal("- - -", Resolve(forwarded: forwarded));
    }

    [Fact]
    public void A_malformed_element_ends_the_walk()
    {
        Assert.Equal("10.0.0.2:0 - -", Resolve(forwarded: "for=\"203.0.113.7\";for=1.1.1.1, for=10.0.0.2", trusted: "127.0.0.1, 10.0.0.0/8"));
    }

    [Fact]
    public void Forwarded_walks_trusted_hops_like_X_Forwarded_For()
    {
        Assert.Equal("203.0.113.7:0 https a.example", Resolve(
            forwarded: "for=203.0.113.7;proto=https;host=a.example, for=10.0.0.5;proto=http;host=internal",
            trusted: "127.0.0.1, 10.0.0.0/8"));
    }

    [Fact]
    public void X_Forwarded_headers_win_over_Forwarded()
    {
        Assert.Equal("203.0.113.7:0 - -", Resolve("203.0.113.7", forwarded: "for=198.51.100.17;proto=https;host=evil.example"));
        Assert.Equal("- https -", Resolve(xfp: "https", forwarded: "for=198.51.100.17"));
        Assert.Equal("198.51.100.17:0 http -", Resolve(forwarded: "for=198.51.100.17;proto=http"));
    }
}
