using System.Buffers.Binary;
using Tunnel.Crypto;

namespace Tunnel.Noise;

/// <summary>
/// Noise section 5.1, CipherState: a key k (here caller-owned memory, usually pinned and zeroed
/// with the handshake) and a 64-bit nonce n. The cipher is ChaChaPoly: the 96-bit nonce is 32 zero
/// bits followed by n little-endian, exactly WireGuard's transport nonce.
/// </summary>
public ref struct CipherState
{
    public const int KeySize = 32;
    public const int TagSize = Sodium.AeadTagSize;

    private readonly Span<byte> _k;
    private ulong _n;
    private bool _hasKey;

    /// <param name="keyStorage">32 bytes that hold k for the life of this view.</param>
    public CipherState(Span<byte> keyStorage)
    {
        if (keyStorage.Length != KeySize)
            throw new ArgumentException("k is 32 bytes.", nameof(keyStorage));
        _k = keyStorage;
    }

    public readonly bool HasKey => _hasKey;

    /// <summary>InitializeKey(key): k = key, n = 0.</summary>
    public void InitializeKey(scoped ReadOnlySpan<byte> key)
    {
        key.CopyTo(_k);
        _n = 0;
        _hasKey = true;
    }

    public void SetNonce(ulong nonce) => _n = nonce;

    /// <summary>EncryptWithAd: ciphertext = plaintext + 16 bytes (a plain copy while there is no key).</summary>
    public void EncryptWithAd(scoped ReadOnlySpan<byte> ad, scoped ReadOnlySpan<byte> plaintext, scoped Span<byte> ciphertext)
    {
        if (!_hasKey)
        {
            plaintext.CopyTo(ciphertext);
            return;
        }
        Span<byte> nonce = stackalloc byte[Sodium.ChaCha20Poly1305NonceSize];
        WriteNonce(nonce, NextNonce());
        Sodium.ChaCha20Poly1305Encrypt(ciphertext, plaintext, ad, nonce, _k);
    }

    /// <summary>DecryptWithAd: false on a bad tag (n is then not advanced, as the spec requires).</summary>
    public bool DecryptWithAd(scoped ReadOnlySpan<byte> ad, scoped ReadOnlySpan<byte> ciphertext, scoped Span<byte> plaintext)
    {
        if (!_hasKey)
        {
            ciphertext.CopyTo(plaintext);
            return true;
        }
        Span<byte> nonce = stackalloc byte[Sodium.ChaCha20Poly1305NonceSize];
        WriteNonce(nonce, _n);
        if (!Sodium.ChaCha20Poly1305Decrypt(plaintext, ciphertext, ad, nonce, _k))
            return false;
        NextNonce();
        return true;
    }

    /// <summary>The ChaChaPoly nonce encoding: 4 zero bytes, then n as 64-bit little-endian.</summary>
    public static void WriteNonce(Span<byte> nonce, ulong n)
    {
        nonce[..4].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], n);
    }

    private ulong NextNonce()
    {
        // 2^64-1 is reserved by the spec; a handshake never gets near it.
        if (_n == ulong.MaxValue)
            throw new InvalidOperationException("CipherState nonce exhausted.");
        return _n++;
    }
}
