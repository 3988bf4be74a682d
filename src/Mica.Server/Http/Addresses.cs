using System.Net;
using System.Net.Sockets;

namespace Mica.Server.Http;

/// <summary>How the interfaces write a connection's addresses, and how Mica reads one from text.</summary>
internal static class Addresses
{
    /// <summary>The host part: IPv4 clients of a dual-stack socket appear as plain IPv4.</summary>
    public static string Host(IPAddress address) => Normalize(address).ToString();

    /// <summary>"host:port", with brackets around an IPv6 host ("[::1]:8000").</summary>
    public static string HostPort(IPAddress address, int port)
    {
        var host = Host(address);
        return host.Contains(':') ? $"[{host}]:{port}" : $"{host}:{port}";
    }

    /// <summary>An IPv4-mapped IPv6 address as the IPv4 address it stands for; any other unchanged.</summary>
    public static IPAddress Normalize(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    /// <summary>
    /// An IP address written the way Python's <c>ipaddress</c> accepts it: IPv4 as four decimal
    /// numbers without leading zeros, or IPv6 (no zone). Stricter than <see cref="IPAddress.TryParse(string, out IPAddress)"/>,
    /// which also takes "127.1", "0x7f.0.0.1" or "1" for addresses: from a header or an option those
    /// are mistakes, not addresses. The result is <see cref="Normalize"/>d.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> text, out IPAddress address)
    {
        address = IPAddress.None;
        if (text.Contains(':'))
        {
            if (text.Contains('%') || !IPAddress.TryParse(text, out var v6) || v6.AddressFamily != AddressFamily.InterNetworkV6) return false;
            address = Normalize(v6);
            return true;
        }
        var parts = 0;
        foreach (var range in text.Split('.'))
        {
            var part = text[range];
            if (++parts > 4 || part.Length is 0 or > 3 || (part.Length > 1 && part[0] == '0')) return false;
            var value = 0;
            foreach (var c in part)
            {
                if (!char.IsAsciiDigit(c)) return false;
                value = value * 10 + (c - '0');
            }
            if (value > 255) return false;
        }
        if (parts != 4 || !IPAddress.TryParse(text, out var v4)) return false;
        address = v4;
        return true;
    }
}
