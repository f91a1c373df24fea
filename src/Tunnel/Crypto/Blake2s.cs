using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Tunnel.Crypto;

/// <summary>
/// BLAKE2s (RFC 7693), written here because no available package offers it. One value type holds
/// the whole incremental state (no heap allocation): <see cref="Init"/>/<see cref="InitKeyed"/>,
/// <see cref="Update"/>, <see cref="Final"/>, plus one-shot <see cref="Hash(ReadOnlySpan{byte}, Span{byte})"/>
/// and <see cref="Mac"/> (keyed BLAKE2s, which WireGuard uses with 16-byte output for mac1/mac2
/// and the cookie). The state is zeroed by <see cref="Final"/> because a keyed state holds the key.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct Blake2s
{
    public const int BlockSize = 64;
    public const int HashSize = 32;
    public const int MaxKeySize = 32;

    private fixed uint _h[8];
    private fixed byte _buffer[BlockSize];
    private ulong _counter;      // t: bytes compressed so far
    private int _bufferLength;   // 0..64; a full block stays buffered until more input proves it is not the last
    private int _outputLength;

    private const uint IV0 = 0x6A09E667, IV1 = 0xBB67AE85, IV2 = 0x3C6EF372, IV3 = 0xA54FF53A;
    private const uint IV4 = 0x510E527F, IV5 = 0x9B05688C, IV6 = 0x1F83D9AB, IV7 = 0x5BE0CD19;

    /// <summary>Starts an unkeyed hash with the given output length (1..32 bytes).</summary>
    public static Blake2s Init(int outputLength = HashSize) => InitKeyed(default, outputLength);

    /// <summary>Starts a keyed hash (key 0..32 bytes; empty means unkeyed) with output 1..32 bytes.</summary>
    public static Blake2s InitKeyed(ReadOnlySpan<byte> key, int outputLength = HashSize)
    {
        if (outputLength is < 1 or > HashSize)
            throw new ArgumentOutOfRangeException(nameof(outputLength));
        if (key.Length > MaxKeySize)
            throw new ArgumentException("BLAKE2s keys are at most 32 bytes.", nameof(key));

        Blake2s s = default;
        s._outputLength = outputLength;
        // Parameter block word 0: digest length, key length, fanout 1, depth 1 (RFC 7693 section 2.5).
        s._h[0] = IV0 ^ 0x01010000u ^ ((uint)key.Length << 8) ^ (uint)outputLength;
        s._h[1] = IV1; s._h[2] = IV2; s._h[3] = IV3;
        s._h[4] = IV4; s._h[5] = IV5; s._h[6] = IV6; s._h[7] = IV7;
        if (!key.IsEmpty)
        {
            // The key, zero padded, is the first block.
            key.CopyTo(new Span<byte>(s._buffer, BlockSize));
            s._bufferLength = BlockSize;
        }
        return s;
    }

    /// <summary>Absorbs more input.</summary>
    public void Update(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
            return;
        fixed (byte* buffer = _buffer)
        {
            int free = BlockSize - _bufferLength;
            if (data.Length > free)
            {
                // Fill and compress the buffered block: more input follows, so it is not the last.
                data[..free].CopyTo(new Span<byte>(buffer + _bufferLength, free));
                data = data[free..];
                _counter += BlockSize;
                Compress(new ReadOnlySpan<byte>(buffer, BlockSize), last: false);
                _bufferLength = 0;
                // Compress whole blocks straight from the input, keeping the final (possibly full) one.
                while (data.Length > BlockSize)
                {
                    _counter += BlockSize;
                    Compress(data[..BlockSize], last: false);
                    data = data[BlockSize..];
                }
            }
            data.CopyTo(new Span<byte>(buffer + _bufferLength, BlockSize - _bufferLength));
            _bufferLength += data.Length;
        }
    }

    /// <summary>Writes the digest (exactly the output length chosen at init) and zeroes the state.</summary>
    public void Final(Span<byte> output)
    {
        if (output.Length != _outputLength)
            throw new ArgumentException($"output must be {_outputLength} bytes.", nameof(output));
        fixed (byte* buffer = _buffer)
        fixed (uint* h = _h)
        {
            _counter += (ulong)_bufferLength;
            new Span<byte>(buffer + _bufferLength, BlockSize - _bufferLength).Clear();
            Compress(new ReadOnlySpan<byte>(buffer, BlockSize), last: true);

            Span<byte> digest = stackalloc byte[HashSize];
            for (int i = 0; i < 8; i++)
                BinaryPrimitives.WriteUInt32LittleEndian(digest[(4 * i)..], h[i]);
            digest[..output.Length].CopyTo(output);
            CryptographicOperations.ZeroMemory(digest);
        }
        this = default;
    }

    /// <summary>One-shot unkeyed BLAKE2s; the output length (1..32) is <paramref name="output"/>'s length.</summary>
    public static void Hash(ReadOnlySpan<byte> data, Span<byte> output)
    {
        var s = Init(output.Length);
        s.Update(data);
        s.Final(output);
    }

    /// <summary>One-shot BLAKE2s of the concatenation <paramref name="a"/> || <paramref name="b"/>.</summary>
    public static void Hash(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> output)
    {
        var s = Init(output.Length);
        s.Update(a);
        s.Update(b);
        s.Final(output);
    }

    /// <summary>One-shot keyed BLAKE2s (MAC in the whitepaper's notation); output 1..32 bytes.</summary>
    public static void Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> data, Span<byte> output)
    {
        var s = InitKeyed(key, output.Length);
        s.Update(data);
        s.Final(output);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void G(ref uint a, ref uint b, ref uint c, ref uint d, uint x, uint y)
    {
        a += b + x; d = uint.RotateRight(d ^ a, 16);
        c += d;     b = uint.RotateRight(b ^ c, 12);
        a += b + y; d = uint.RotateRight(d ^ a, 8);
        c += d;     b = uint.RotateRight(b ^ c, 7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Load(ref byte block, int word)
    {
        uint v = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref block, 4 * word));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }

    /// <summary>The compression function F (RFC 7693 section 3.2), rounds unrolled with the message
    /// schedule written out so that no array is indexed inside the loop.</summary>
    [SkipLocalsInit]
    private void Compress(ReadOnlySpan<byte> block, bool last)
    {
        ref byte p = ref MemoryMarshal.GetReference(block);
        uint m0 = Load(ref p, 0), m1 = Load(ref p, 1), m2 = Load(ref p, 2), m3 = Load(ref p, 3);
        uint m4 = Load(ref p, 4), m5 = Load(ref p, 5), m6 = Load(ref p, 6), m7 = Load(ref p, 7);
        uint m8 = Load(ref p, 8), m9 = Load(ref p, 9), m10 = Load(ref p, 10), m11 = Load(ref p, 11);
        uint m12 = Load(ref p, 12), m13 = Load(ref p, 13), m14 = Load(ref p, 14), m15 = Load(ref p, 15);

        fixed (uint* h = _h)
        {
            uint v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
            uint v8 = IV0, v9 = IV1, v10 = IV2, v11 = IV3;
            uint v12 = IV4 ^ (uint)_counter;
            uint v13 = IV5 ^ (uint)(_counter >> 32);
            uint v14 = last ? ~IV6 : IV6;
            uint v15 = IV7;

            // round 0
            G(ref v0, ref v4, ref v8, ref v12, m0, m1);
            G(ref v1, ref v5, ref v9, ref v13, m2, m3);
            G(ref v2, ref v6, ref v10, ref v14, m4, m5);
            G(ref v3, ref v7, ref v11, ref v15, m6, m7);
            G(ref v0, ref v5, ref v10, ref v15, m8, m9);
            G(ref v1, ref v6, ref v11, ref v12, m10, m11);
            G(ref v2, ref v7, ref v8, ref v13, m12, m13);
            G(ref v3, ref v4, ref v9, ref v14, m14, m15);
            // round 1
            G(ref v0, ref v4, ref v8, ref v12, m14, m10);
            G(ref v1, ref v5, ref v9, ref v13, m4, m8);
            G(ref v2, ref v6, ref v10, ref v14, m9, m15);
            G(ref v3, ref v7, ref v11, ref v15, m13, m6);
            G(ref v0, ref v5, ref v10, ref v15, m1, m12);
            G(ref v1, ref v6, ref v11, ref v12, m0, m2);
            G(ref v2, ref v7, ref v8, ref v13, m11, m7);
            G(ref v3, ref v4, ref v9, ref v14, m5, m3);
            // round 2
            G(ref v0, ref v4, ref v8, ref v12, m11, m8);
            G(ref v1, ref v5, ref v9, ref v13, m12, m0);
            G(ref v2, ref v6, ref v10, ref v14, m5, m2);
            G(ref v3, ref v7, ref v11, ref v15, m15, m13);
            G(ref v0, ref v5, ref v10, ref v15, m10, m14);
            G(ref v1, ref v6, ref v11, ref v12, m3, m6);
            G(ref v2, ref v7, ref v8, ref v13, m7, m1);
            G(ref v3, ref v4, ref v9, ref v14, m9, m4);
            // round 3
            G(ref v0, ref v4, ref v8, ref v12, m7, m9);
            G(ref v1, ref v5, ref v9, ref v13, m3, m1);
            G(ref v2, ref v6, ref v10, ref v14, m13, m12);
            G(ref v3, ref v7, ref v11, ref v15, m11, m14);
            G(ref v0, ref v5, ref v10, ref v15, m2, m6);
            G(ref v1, ref v6, ref v11, ref v12, m5, m10);
            G(ref v2, ref v7, ref v8, ref v13, m4, m0);
            G(ref v3, ref v4, ref v9, ref v14, m15, m8);
            // round 4
            G(ref v0, ref v4, ref v8, ref v12, m9, m0);
            G(ref v1, ref v5, ref v9, ref v13, m5, m7);
            G(ref v2, ref v6, ref v10, ref v14, m2, m4);
            G(ref v3, ref v7, ref v11, ref v15, m10, m15);
            G(ref v0, ref v5, ref v10, ref v15, m14, m1);
            G(ref v1, ref v6, ref v11, ref v12, m11, m12);
            G(ref v2, ref v7, ref v8, ref v13, m6, m8);
            G(ref v3, ref v4, ref v9, ref v14, m3, m13);
            // round 5
            G(ref v0, ref v4, ref v8, ref v12, m2, m12);
            G(ref v1, ref v5, ref v9, ref v13, m6, m10);
            G(ref v2, ref v6, ref v10, ref v14, m0, m11);
            G(ref v3, ref v7, ref v11, ref v15, m8, m3);
            G(ref v0, ref v5, ref v10, ref v15, m4, m13);
            G(ref v1, ref v6, ref v11, ref v12, m7, m5);
            G(ref v2, ref v7, ref v8, ref v13, m15, m14);
            G(ref v3, ref v4, ref v9, ref v14, m1, m9);
            // round 6
            G(ref v0, ref v4, ref v8, ref v12, m12, m5);
            G(ref v1, ref v5, ref v9, ref v13, m1, m15);
            G(ref v2, ref v6, ref v10, ref v14, m14, m13);
            G(ref v3, ref v7, ref v11, ref v15, m4, m10);
            G(ref v0, ref v5, ref v10, ref v15, m0, m7);
            G(ref v1, ref v6, ref v11, ref v12, m6, m3);
            G(ref v2, ref v7, ref v8, ref v13, m9, m2);
            G(ref v3, ref v4, ref v9, ref v14, m8, m11);
            // round 7
            G(ref v0, ref v4, ref v8, ref v12, m13, m11);
            G(ref v1, ref v5, ref v9, ref v13, m7, m14);
            G(ref v2, ref v6, ref v10, ref v14, m12, m1);
            G(ref v3, ref v7, ref v11, ref v15, m3, m9);
            G(ref v0, ref v5, ref v10, ref v15, m5, m0);
            G(ref v1, ref v6, ref v11, ref v12, m15, m4);
            G(ref v2, ref v7, ref v8, ref v13, m8, m6);
            G(ref v3, ref v4, ref v9, ref v14, m2, m10);
            // round 8
            G(ref v0, ref v4, ref v8, ref v12, m6, m15);
            G(ref v1, ref v5, ref v9, ref v13, m14, m9);
            G(ref v2, ref v6, ref v10, ref v14, m11, m3);
            G(ref v3, ref v7, ref v11, ref v15, m0, m8);
            G(ref v0, ref v5, ref v10, ref v15, m12, m2);
            G(ref v1, ref v6, ref v11, ref v12, m13, m7);
            G(ref v2, ref v7, ref v8, ref v13, m1, m4);
            G(ref v3, ref v4, ref v9, ref v14, m10, m5);
            // round 9
            G(ref v0, ref v4, ref v8, ref v12, m10, m2);
            G(ref v1, ref v5, ref v9, ref v13, m8, m4);
            G(ref v2, ref v6, ref v10, ref v14, m7, m6);
            G(ref v3, ref v7, ref v11, ref v15, m1, m5);
            G(ref v0, ref v5, ref v10, ref v15, m15, m11);
            G(ref v1, ref v6, ref v11, ref v12, m9, m14);
            G(ref v2, ref v7, ref v8, ref v13, m3, m12);
            G(ref v3, ref v4, ref v9, ref v14, m13, m0);

            h[0] ^= v0 ^ v8; h[1] ^= v1 ^ v9; h[2] ^= v2 ^ v10; h[3] ^= v3 ^ v11;
            h[4] ^= v4 ^ v12; h[5] ^= v5 ^ v13; h[6] ^= v6 ^ v14; h[7] ^= v7 ^ v15;
        }
    }
}
