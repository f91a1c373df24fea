using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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

    /// <summary>
    /// Starts an HMAC with <paramref name="key"/>. Both key pads are compressed here (each is the
    /// first block of its hash and is always followed by more: the outer one by the inner hash,
    /// the inner one by the message), so a copy of this value computes another HMAC under the same
    /// key with two compressions fewer. The message must not be empty (<see cref="Final"/> refuses;
    /// every HMAC of WireGuard's KDF has a non-empty message, see <see cref="Compute"/>).
    /// </summary>
    public static HmacBlake2s Init(ReadOnlySpan<byte> key)
    {
        Span<byte> block = stackalloc byte[Blake2s.BlockSize];
        WriteKeyBlock(key, block);
        HmacBlake2s mac = default;
        Xor(block, 0x36);
        mac._inner = Blake2s.InitWithBlock(block);
        Xor(block, 0x36 ^ 0x5c);
        mac._outer = Blake2s.InitWithBlock(block);
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

    /// <summary>Zeroes the state without a tag (a copy kept for reuse, once done with).</summary>
    public void Clear() => CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(new Span<HmacBlake2s>(ref this)));

    /// <summary>One-shot HMAC-BLAKE2s(key, data) into a 32-byte output; any data, also empty.</summary>
    public static void Compute(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output)
    {
        if (data.IsEmpty)
        {
            // The inner hash of an empty message is the pad alone, its last block: no Init here.
            ComputeEmpty(key, output);
            return;
        }
        var mac = Init(key);
        mac.Update(data);
        mac.Final(output);
    }

    private static void ComputeEmpty(ReadOnlySpan<byte> key, Span<byte> output)
    {
        Span<byte> block = stackalloc byte[Blake2s.BlockSize];
        Span<byte> innerHash = stackalloc byte[Blake2s.HashSize];
        WriteKeyBlock(key, block);
        Xor(block, 0x36);
        Blake2s.Hash(block, innerHash);
        Xor(block, 0x36 ^ 0x5c);
        Blake2s.Hash(block, innerHash, output);
        CryptographicOperations.ZeroMemory(block);
        CryptographicOperations.ZeroMemory(innerHash);
    }

    /// <summary>RFC 2104's K': the key zero-padded to one block, or its hash if it is longer.</summary>
    private static void WriteKeyBlock(ReadOnlySpan<byte> key, Span<byte> block)
    {
        block.Clear();
        if (key.Length > Blake2s.BlockSize)
            Blake2s.Hash(key, block[..Blake2s.HashSize]);
        else
            key.CopyTo(block);
    }

    /// <summary>block ^= pad in every byte of the 64-byte block, 16 bytes at a time (Init's own
    /// instructions, mostly this XOR when it went a byte at a time, were a fifth of the KDF's).</summary>
    private static void Xor(Span<byte> block, byte pad)
    {
        var mask = Vector128.Create(pad);
        ref byte start = ref MemoryMarshal.GetReference(block);
        for (nuint i = 0; i < Blake2s.BlockSize; i += (nuint)Vector128<byte>.Count)
            (Vector128.LoadUnsafe(ref start, i) ^ mask).StoreUnsafe(ref start, i);
    }
}
