using System.Net;

namespace Mica.Server.Http;

/// <summary>How the interfaces write a connection's addresses.</summary>
internal static class Addresses
{
    /// <summary>The host part: IPv4 clients of a dual-stack socket appear as plain IPv4.</summary>
    public static string Host(IPAddress address) =>
        address.IsIPv4MappedToIPv6 ? address.MapToIPv4().ToString() : address.ToString();

    /// <summary>"host:port", with brackets around an IPv6 host ("[::1]:8000").</summary>
    public static string HostPort(IPAddress address, int port)
    {
        var host = Host(address);
        return host.Contains(':') ? $"[{host}]:{port}" : $"{host}:{port}";
    }
}
