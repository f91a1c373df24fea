using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using Tunnel.Crypto;

namespace Tunnel.Bench;

/// <summary>
/// ChaCha20-Poly1305 IETF, the transport cipher, from its candidate back-ends: libsodium
/// through <see cref="Sodium"/> (the handshake's, and the data path's fallback), OpenSSL's EVP
/// interface called directly (<see cref="OpenSslChaCha20Poly1305"/>, what the data path uses
/// through <see cref="TransportAead"/>, with the key scrub deferred to the end of a batch as the
/// data-path threads do) and .NET's <see cref="System.Security.Cryptography.ChaCha20Poly1305"/>
/// (OpenSSL underneath), one instance per key made once and reused, as a session would hold it. Sizes: a small packet, a medium
/// one, and 1420 bytes, WireGuard's default MTU (the largest plaintext of a transport message).
/// </summary>
/// <remarks>
/// Both back-ends write the same bytes: ciphertext then the 16-byte tag in one buffer (.NET's API
/// is detached, so its tag goes to the last 16 bytes of that buffer). No associated data, as in
/// a WireGuard transport message. The nonce is fixed: its encoding costs the same for both.
/// Open decrypts a valid box into a separate buffer, so the box stays valid across invocations.
/// </remarks>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public class AeadBenchmarks
{
    private const int TagSize = Sodium.AeadTagSize;

    private readonly byte[] _key = new byte[Sodium.AeadKeySize];
    private readonly byte[] _nonce = new byte[Sodium.ChaCha20Poly1305NonceSize];
    private byte[] _plaintext = [];
    private byte[] _box = [];      // a valid sealed box of _plaintext (the input of Open)
    private byte[] _forged = [];   // _box with one tag bit flipped (the input of OpenForged)
    private byte[] _sealed = [];   // Seal's output
    private byte[] _opened = [];   // Open's output
    private System.Security.Cryptography.ChaCha20Poly1305? _dotnet;

    [Params(64, 512, 1420)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        if (!System.Security.Cryptography.ChaCha20Poly1305.IsSupported)
            throw new PlatformNotSupportedException(".NET ChaCha20Poly1305 is not supported here.");
        Sodium.EnsureLoaded();
        RandomNumberGenerator.Fill(_key);
        RandomNumberGenerator.Fill(_nonce);
        _plaintext = new byte[Size];
        RandomNumberGenerator.Fill(_plaintext);
        _box = new byte[Size + TagSize];
        _forged = new byte[Size + TagSize];
        _sealed = new byte[Size + TagSize];
        _opened = new byte[Size];
        _dotnet = new System.Security.Cryptography.ChaCha20Poly1305(_key);
        if (!OpenSslChaCha20Poly1305.IsAvailable)
            throw new PlatformNotSupportedException("libcrypto.so.3 with ChaCha20-Poly1305 is not available here.");
        OpenSslChaCha20Poly1305.DeferScrubOnThisThread();

        Sodium.ChaCha20Poly1305Encrypt(_box, _plaintext, default, _nonce, _key);
        _box.CopyTo(_forged);
        _forged[^1] ^= 1;
        // Both back-ends must agree, or the comparison is meaningless.
        DotnetSeal();
        var dotnetSealed = _sealed.AsSpan().SequenceEqual(_box);
        OpenSslSeal();
        if (!dotnetSealed || !_sealed.AsSpan().SequenceEqual(_box) || !SodiumOpen() || !DotnetOpen() || !OpenSslOpen()
            || SodiumOpenForged() || DotnetOpenForged() || OpenSslOpenForged())
            throw new InvalidOperationException("The two ChaCha20-Poly1305 back-ends disagree.");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        OpenSslChaCha20Poly1305.ScrubThisThread();
        _dotnet?.Dispose();
        CryptographicOperations.ZeroMemory(_key);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Seal")]
    public void SodiumSeal() =>
        Sodium.ChaCha20Poly1305Encrypt(_sealed, _plaintext, default, _nonce, _key);

    [Benchmark, BenchmarkCategory("Seal")]
    public void DotnetSeal() =>
        _dotnet!.Encrypt(_nonce, _plaintext, _sealed.AsSpan(0, Size), _sealed.AsSpan(Size, TagSize));

    [Benchmark, BenchmarkCategory("Seal")]
    public void OpenSslSeal() => OpenSslChaCha20Poly1305.Encrypt(_sealed, _plaintext, _nonce, _key);

    [Benchmark(Baseline = true), BenchmarkCategory("Open")]
    public bool SodiumOpen() =>
        Sodium.ChaCha20Poly1305Decrypt(_opened, _box, default, _nonce, _key);

    [Benchmark, BenchmarkCategory("Open")]
    public bool DotnetOpen() => DotnetTryOpen(_box);

    [Benchmark, BenchmarkCategory("Open")]
    public bool OpenSslOpen() => OpenSslChaCha20Poly1305.Decrypt(_opened, _box, _nonce, _key);

    // A forged packet is something an attacker can send at line rate, so the cost of refusing
    // one matters too: libsodium returns -1, .NET throws (and allocates) for every bad tag.

    [Benchmark(Baseline = true), BenchmarkCategory("OpenForged")]
    public bool SodiumOpenForged() =>
        Sodium.ChaCha20Poly1305Decrypt(_opened, _forged, default, _nonce, _key);

    [Benchmark, BenchmarkCategory("OpenForged")]
    public bool DotnetOpenForged() => DotnetTryOpen(_forged);

    [Benchmark, BenchmarkCategory("OpenForged")]
    public bool OpenSslOpenForged() => OpenSslChaCha20Poly1305.Decrypt(_opened, _forged, _nonce, _key);

    private bool DotnetTryOpen(byte[] box)
    {
        try
        {
            _dotnet!.Decrypt(_nonce, box.AsSpan(0, Size), box.AsSpan(Size, TagSize), _opened);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }
}
