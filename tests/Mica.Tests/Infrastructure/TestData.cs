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

    /// <summary>
    /// GETs a test app's /large route (<paramref name="query"/> says how the app sends it) and checks
    /// the body is pattern(size), 1 MiB and a little: large bodies are read by Kestrel from the app's
    /// own bytes objects, not copied first.
    /// </summary>
    public static async Task AssertLargeBodyAsync(HttpClient client, string query)
    {
        const int size = 1_048_593;
        var body = await client.GetByteArrayAsync($"/large?size={size}&{query}");
        Xunit.Assert.Equal(size, body.Length);
        Xunit.Assert.Equal(Sha256(Pattern(size)), Sha256(body));
    }

    /// <summary>Lowercase hex SHA-256, as Python's hashlib hexdigest() writes it.</summary>
    public static string Sha256(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
