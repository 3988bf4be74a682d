using System.Security.Cryptography;

namespace Mica.Tests.Infrastructure;

/// <summary>Request bodies for the tests, and the digest the apps report back.</summary>
public static class TestData
{
    /// <summary>Reproducible random bytes.</summary>
    public static byte[] RandomBytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>The test apps' pattern(size): 0, 1, ..., 250, 0, 1, ... (a period prime to the block sizes).</summary>
    public static byte[] Pattern(int size)
    {
        var data = new byte[size];
        for (var i = 0; i < size; i++) data[i] = (byte)(i % 251);
        return data;
    }

    /// <summary>Lowercase hex SHA-256, as Python's hashlib hexdigest() writes it.</summary>
    public static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
