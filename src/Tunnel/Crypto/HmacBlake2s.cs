using System.Security.Cryptography;

namespace Tunnel.Crypto;

/// <summary>
/// HMAC (RFC 2104) over BLAKE2s-256 with its 64-byte block: the whitepaper's HMAC, from which the
/// KDF is built. A value type with incremental <see cref="Update"/> so the KDF can feed
/// "t(i-1) || i" without concatenating into a buffer.
/// </summary>
public struct HmacBlake2s
{
    public const int OutputSize = Blake2s.HashSize;

    private Blake2s _inner;
    private Blake2s _outer;

    public static HmacBlake2s Init(ReadOnlySpan<byte> key)
    {
        Span<byte> block = stackalloc byte[Blake2s.BlockSize];
        block.Clear();
        if (key.Length > Blake2s.BlockSize)
            Blake2s.Hash(key, block[..Blake2s.HashSize]);
        else
            key.CopyTo(block);

        HmacBlake2s mac = default;
        for (int i = 0; i < block.Length; i++) block[i] ^= 0x36;
        mac._inner = Blake2s.Init();
        mac._inner.Update(block);
        for (int i = 0; i < block.Length; i++) block[i] ^= 0x36 ^ 0x5c;
        mac._outer = Blake2s.Init();
        mac._outer.Update(block);
        CryptographicOperations.ZeroMemory(block);
        return mac;
    }

    public void Update(ReadOnlySpan<byte> data) => _inner.Update(data);

    /// <summary>Writes the 32-byte tag and zeroes the state (it holds key-derived pads).</summary>
    public void Final(Span<byte> output)
    {
        Span<byte> innerHash = stackalloc byte[Blake2s.HashSize];
        _inner.Final(innerHash);
        _outer.Update(innerHash);
        _outer.Final(output);
        CryptographicOperations.ZeroMemory(innerHash);
    }

    /// <summary>One-shot HMAC-BLAKE2s(key, data) into a 32-byte output.</summary>
    public static void Compute(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output)
    {
        var mac = Init(key);
        mac.Update(data);
        mac.Final(output);
    }
}
