namespace Tunnel.Crypto;

/// <summary>
/// The AEAD of transport data messages (ChaCha20-Poly1305 IETF, no associated data), from
/// whichever back-end is faster for the size: OpenSSL's (<see cref="OpenSslChaCha20Poly1305"/>)
/// for full-sized packets, where its AVX-512 code takes about 0.69 of libsodium's time at 1420
/// bytes, and libsodium's below <see cref="OpenSslMinimumLength"/>, where OpenSSL's fixed cost
/// per call (about 170 ns more) dominates: TCP's ACKs, keepalives, and small forged packets an
/// attacker may send at line rate (docs/BENCHMARKS.md, AeadBenchmarks). The same algorithm either
/// way, so the bytes are the same; without libcrypto.so.3 everything goes to libsodium. Handshake
/// messages keep using <see cref="Sodium"/> directly.
/// </summary>
public static class TransportAead
{
    /// <summary>Plaintexts from this length on go to OpenSSL (the two cost the same near 650 bytes here).</summary>
    public const int OpenSslMinimumLength = 768;

    /// <summary>Which implementations seal and open, for logs and benchmarks.</summary>
    public static string Implementation => OpenSslChaCha20Poly1305.IsAvailable ? "OpenSSL and libsodium" : "libsodium";

    /// <summary>
    /// For a data-path thread: from now on the AEAD may keep the last key it used in its native
    /// state until <see cref="ScrubThreadKeys"/>, which the thread calls after each batch (before
    /// it waits again). Saves a second cipher initialisation per packet.
    /// </summary>
    public static void HoldKeysUntilScrub() => OpenSslChaCha20Poly1305.DeferScrubOnThisThread();

    /// <summary>Zeroes any key this thread's AEAD state still holds.</summary>
    public static void ScrubThreadKeys()
    {
        if (OpenSslChaCha20Poly1305.IsAvailable)
            OpenSslChaCha20Poly1305.ScrubThisThread();
    }

    /// <summary>Seals <paramref name="plaintext"/> into <paramref name="ciphertext"/> (plaintext
    /// length + 16, tag last); in place allowed.</summary>
    public static void Seal(Span<byte> ciphertext, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        if (ciphertext.Length != plaintext.Length + Sodium.AeadTagSize || nonce.Length != Sodium.ChaCha20Poly1305NonceSize
            || key.Length != Sodium.AeadKeySize)
            throw new ArgumentException("ChaCha20-Poly1305: wrong ciphertext, nonce or key length");
        if (plaintext.Length >= OpenSslMinimumLength && OpenSslChaCha20Poly1305.IsAvailable)
            OpenSslChaCha20Poly1305.Encrypt(ciphertext, plaintext, nonce, key);
        else
            Sodium.ChaCha20Poly1305Encrypt(ciphertext, plaintext, ReadOnlySpan<byte>.Empty, nonce, key);
    }

    /// <summary>Opens <paramref name="ciphertext"/> (payload + 16-byte tag) into
    /// <paramref name="plaintext"/> (ciphertext length - 16). False on a bad tag or wrong lengths.</summary>
    public static bool Open(Span<byte> plaintext, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        if (ciphertext.Length < Sodium.AeadTagSize || plaintext.Length != ciphertext.Length - Sodium.AeadTagSize
            || nonce.Length != Sodium.ChaCha20Poly1305NonceSize || key.Length != Sodium.AeadKeySize)
            return false;
        return plaintext.Length >= OpenSslMinimumLength && OpenSslChaCha20Poly1305.IsAvailable
            ? OpenSslChaCha20Poly1305.Decrypt(plaintext, ciphertext, nonce, key)
            : Sodium.ChaCha20Poly1305Decrypt(plaintext, ciphertext, ReadOnlySpan<byte>.Empty, nonce, key);
    }
}
