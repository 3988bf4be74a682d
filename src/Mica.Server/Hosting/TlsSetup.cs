using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Mica.Server.Python;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Mica.Server.Hosting;

/// <summary>TLS as configured by the <c>--ssl-*</c> options.</summary>
public sealed record TlsConfig
{
    public required string Certificate { get; init; }
    public required string Key { get; init; }
    public string? KeyPassword { get; init; }
    /// <summary>tls1.2 or tls1.3 (Granian's default).</summary>
    public string ProtocolMin { get; init; } = "tls1.3";
    /// <summary>Client certificates must chain to these roots (PEM file).</summary>
    public string? ClientCa { get; init; }
    /// <summary>Client certificates listed here are refused (PEM or DER CRL files).</summary>
    public IReadOnlyList<string> ClientCrls { get; init; } = [];
    /// <summary>A client without a valid certificate is refused at the handshake.</summary>
    public bool ClientVerify { get; init; }
}

/// <summary>
/// Loads the certificate, key, client CA and CRLs of a <see cref="TlsConfig"/> into Kestrel's HTTPS
/// options. The master calls <see cref="Load"/> once before starting workers, so a bad file or
/// password is one line and exit 1 instead of a worker failing over and over.
/// </summary>
public static class TlsSetup
{
    /// <exception cref="StartupException">with a one-line reason when a file cannot be used.</exception>
    public static HttpsConnectionAdapterOptions Load(TlsConfig config)
    {
        var (certificate, chain) = LoadCertificate(config);
        var options = new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            ServerCertificateChain = chain,
            SslProtocols = config.ProtocolMin == "tls1.2" ? SslProtocols.Tls12 | SslProtocols.Tls13 : SslProtocols.Tls13,
            ClientCertificateMode = config.ClientVerify ? ClientCertificateMode.RequireCertificate
                : config.ClientCa is not null ? ClientCertificateMode.AllowCertificate : ClientCertificateMode.NoCertificate,
            CheckCertificateRevocation = false,   // CRLs are the operator's files (--ssl-crl), checked below
        };
        if (config.ClientCa is not null)
        {
            var roots = new X509Certificate2Collection();
            try { roots.ImportFromPemFile(config.ClientCa); }
            catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
            {
                throw new StartupException($"cannot load --ssl-ca '{config.ClientCa}': {e.Message}");
            }
            if (roots.Count == 0) throw new StartupException($"--ssl-ca '{config.ClientCa}' holds no PEM certificate");
            var crls = config.ClientCrls.Select(LoadCrl).ToArray();
            options.ClientCertificateValidation = (client, _, _) => IsTrusted(client, roots, crls);
        }
        return options;
    }

    /// <summary>The server certificate (the first in its file) as PEM text.</summary>
    public static string CertificatePem(TlsConfig config)
    {
        var text = File.ReadAllText(config.Certificate);
        return PemEncoding.TryFind(text, out var pem) ? text[pem.Location] : text;
    }

    private static (X509Certificate2 Certificate, X509Certificate2Collection Chain) LoadCertificate(TlsConfig config)
    {
        X509Certificate2 loaded;
        try
        {
            loaded = config.KeyPassword is { Length: > 0 } password
                ? X509Certificate2.CreateFromEncryptedPemFile(config.Certificate, password, config.Key)
                : X509Certificate2.CreateFromPemFile(config.Certificate, config.Key);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            var hint = config.KeyPassword is { Length: > 0 } ? " (wrong --ssl-keyfile-password, or not a PKCS#8 encrypted key?)"
                : File.Exists(config.Key) && File.ReadAllText(config.Key).Contains("ENCRYPTED", StringComparison.Ordinal) ? " (the key is encrypted: give --ssl-keyfile-password)"
                : "";
            throw new StartupException($"cannot load the SSL certificate '{config.Certificate}' with key '{config.Key}': {e.Message}{hint}");
        }
        // A key loaded from PEM is ephemeral; a PKCS#12 round trip gives SslStream a key it can always use.
        using (loaded)
        {
            var certificate = X509CertificateLoader.LoadPkcs12(loaded.Export(X509ContentType.Pkcs12), null);
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(config.Certificate);
            if (chain.Count > 0) chain.RemoveAt(0);   // the leaf itself; the rest is the chain to send
            return (certificate, chain);
        }
    }

    private static byte[] LoadCrl(string path)
    {
        try
        {
            var bytes = File.ReadAllBytes(path);
            var text = System.Text.Encoding.ASCII.GetString(bytes);
            var der = PemEncoding.TryFind(text, out var pem) ? Convert.FromBase64String(text[pem.Base64Data]) : bytes;
            _ = CertificateRevocationListBuilder.Load(der, out _);    // parses now: a broken file fails at start
            return der;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or CryptographicException)
        {
            throw new StartupException($"cannot load --ssl-crl '{path}': {e.Message}");
        }
    }

    /// <summary>The client's certificate chains to one of the roots and no CRL lists it.</summary>
    private static bool IsTrusted(X509Certificate2 client, X509Certificate2Collection roots, byte[][] crls)
    {
        try { return ChainsAndNotRevoked(client, roots, crls); }
        catch (CryptographicException) { return false; }
    }

    private static bool ChainsAndNotRevoked(X509Certificate2 client, X509Certificate2Collection roots, byte[][] crls)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (!chain.Build(client)) return false;
        foreach (var crl in crls)
        {
            // The builder parses the CRL; removing the client's serial succeeds only if it is listed.
            var listed = CertificateRevocationListBuilder.Load(crl, out _);
            if (listed.RemoveEntry(client.SerialNumberBytes.Span)) return false;
        }
        return true;
    }
}
