using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Mica.Server.Http;

/// <summary>
/// <c>--forwarded-allow-ips</c>: the peers whose proxy headers are believed, as uvicorn spells them:
/// a comma-separated list of IP addresses and CIDR networks (IPv4 or IPv6), or <c>*</c> for every
/// peer. Unlike uvicorn, which keeps anything else as a "literal" that then never matches, a value
/// that is not an address or a network is an error, and so is a network with host bits set
/// (<c>10.0.0.1/8</c>: Python's <c>ip_network</c> refuses it too). IPv4-mapped IPv6 addresses
/// (a dual-stack socket's IPv4 peers) match their IPv4 form.
/// </summary>
public sealed class TrustedProxies
{
    /// <summary>uvicorn's default: only a proxy on this machine.</summary>
    public const string Default = "127.0.0.1";

    private readonly IPAddress[] _addresses;
    private readonly IPNetwork[] _networks;

    /// <summary><c>*</c>: every peer is trusted.</summary>
    public bool TrustsAll { get; }

    private TrustedProxies(bool all, IPAddress[] addresses, IPNetwork[] networks)
    {
        TrustsAll = all;
        _addresses = addresses;
        _networks = networks;
    }

    /// <summary>Parses the option's text; <paramref name="error"/> says what is wrong with which item.</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out TrustedProxies? trusted, [NotNullWhen(false)] out string? error)
    {
        trusted = null;
        error = null;
        var all = false;
        var addresses = new List<IPAddress>();
        var networks = new List<IPNetwork>();
        foreach (var raw in text.Split(','))
        {
            var item = raw.Trim();
            if (item.Length == 0) continue;
            if (item == "*") all = true;
            else if (item.IndexOf('/') is var slash and >= 0)
            {
                if (!TryParseNetwork(item, slash, out var network, out error)) return false;
                networks.Add(network);
            }
            else if (Addresses.TryParse(item, out var address)) addresses.Add(address);
            else
            {
                error = $"'{item}' is not an IP address, a CIDR network or '*'";
                return false;
            }
        }
        trusted = new TrustedProxies(all, [.. addresses], [.. networks]);
        return true;
    }

    /// <summary>For text already validated (the master checked it before sending it to the worker).</summary>
    public static TrustedProxies Parse(string text) =>
        TryParse(text, out var trusted, out var error) ? trusted : throw new FormatException(error);

    private static bool TryParseNetwork(string item, int slash, out IPNetwork network, [NotNullWhen(false)] out string? error)
    {
        network = default;
        error = null;
        var prefixText = item.AsSpan(slash + 1);
        if (!Addresses.TryParse(item.AsSpan(0, slash), out var address)
            || prefixText.Length is 0 or > 3 || prefixText.ContainsAnyExceptInRange('0', '9')
            || !int.TryParse(prefixText, NumberStyles.None, CultureInfo.InvariantCulture, out var prefix))
        {
            error = $"'{item}' is not an IP address, a CIDR network or '*'";
            return false;
        }
        // Addresses.TryParse turned "::ffff:10.0.0.0" into 10.0.0.0: its prefix counts from bit 96.
        if (address.AddressFamily == AddressFamily.InterNetwork && item.AsSpan(0, slash).Contains(':')) prefix -= 96;
        var bits = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (prefix < 0 || prefix > bits)
        {
            error = $"'{item}': the prefix length must be between 0 and {bits}";
            return false;
        }
        var masked = new IPNetwork(Mask(address, prefix), prefix);
        if (!masked.BaseAddress.Equals(address))
        {
            error = $"'{item}' has host bits set (the network is {masked})";
            return false;
        }
        network = masked;
        return true;
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }
        return new IPAddress(bytes);
    }

    /// <summary>
    /// Whether proxy headers from <paramref name="peer"/> are believed. A peer without an IP address
    /// is a Unix domain socket's: it is always trusted (only processes the socket file's permissions
    /// admit can connect; gunicorn and waitress trust it too, uvicorn only with <c>*</c>).
    /// </summary>
    public bool Trusts(IPAddress? peer)
    {
        if (TrustsAll || peer is null) return true;
        peer = Addresses.Normalize(peer);
        foreach (var address in _addresses)
            if (address.Equals(peer)) return true;
        foreach (var network in _networks)
            if (network.Contains(peer)) return true;
        return false;
    }
}
