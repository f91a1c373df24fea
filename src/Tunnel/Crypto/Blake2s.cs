using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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

    /// <summary>
    /// Starts an unkeyed 32-byte hash whose first input is the 64-byte <paramref name="block"/>,
    /// compressed at once rather than kept until more input proves it is not the last: a copy of
    /// the returned state then starts past that work (HMAC's key pads, reused by the KDF for each
    /// output). More input must follow before <see cref="Final"/>, which refuses otherwise.
    /// </summary>
    public static Blake2s InitWithBlock(ReadOnlySpan<byte> block)
    {
        if (block.Length != BlockSize)
            throw new ArgumentException($"the first block is {BlockSize} bytes.", nameof(block));
        Blake2s s = Init();
        s._counter = BlockSize;
        s.Compress(block, last: false);
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
        // Only InitWithBlock leaves a compressed block and nothing buffered: that block was not
        // marked last, so finishing here would give a wrong digest.
        if (_bufferLength == 0 && _counter != 0)
            throw new InvalidOperationException("a hash started with InitWithBlock needs more input before Final.");
        fixed (byte* buffer = _buffer)
        fixed (uint* h = _h)
        {
            _counter += (ulong)_bufferLength;
            new Span<byte>(buffer + _bufferLength, BlockSize - _bufferLength).Clear();
            Compress(new ReadOnlySpan<byte>(buffer, BlockSize), last: true);

            if (BitConverter.IsLittleEndian)
            {
                // h is the digest's byte order already: no copy of it to zero afterwards.
                new ReadOnlySpan<byte>(h, HashSize)[..output.Length].CopyTo(output);
            }
            else
            {
                Span<byte> digest = stackalloc byte[HashSize];
                for (int i = 0; i < 8; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(digest[(4 * i)..], h[i]);
                digest[..output.Length].CopyTo(output);
                CryptographicOperations.ZeroMemory(digest);
            }
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
    private static uint Load(ref byte block, int word)
    {
        uint v = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref block, 4 * word));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> RotateRight(Vector128<uint> x, [ConstantExpected] int n) =>
        Vector128.ShiftRightLogical(x, n) | Vector128.ShiftLeft(x, 32 - n);

    /// <summary>G on four columns (or diagonals) at once: each row of the 4x4 state is one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void G(ref Vector128<uint> a, ref Vector128<uint> b, ref Vector128<uint> c, ref Vector128<uint> d,
        Vector128<uint> x, Vector128<uint> y)
    {
        a += b + x; d = RotateRight(d ^ a, 16);
        c += d;     b = RotateRight(b ^ c, 12);
        a += b + y; d = RotateRight(d ^ a, 8);
        c += d;     b = RotateRight(b ^ c, 7);
    }

    // Rotating rows 2, 3 and 4 left by 1, 2 and 3 lanes lines the diagonals up as columns.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Diagonalize(ref Vector128<uint> b, ref Vector128<uint> c, ref Vector128<uint> d)
    {
        b = Vector128.Shuffle(b, Vector128.Create(1u, 2, 3, 0));
        c = Vector128.Shuffle(c, Vector128.Create(2u, 3, 0, 1));
        d = Vector128.Shuffle(d, Vector128.Create(3u, 0, 1, 2));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Undiagonalize(ref Vector128<uint> b, ref Vector128<uint> c, ref Vector128<uint> d)
    {
        b = Vector128.Shuffle(b, Vector128.Create(3u, 0, 1, 2));
        c = Vector128.Shuffle(c, Vector128.Create(2u, 3, 0, 1));
        d = Vector128.Shuffle(d, Vector128.Create(1u, 2, 3, 0));
    }

    /// <summary>
    /// The compression function F (RFC 7693 section 3.2). The 4x4 working state is kept as four
    /// 128-bit rows, so G runs on four columns, then four diagonals, at once; the ten rounds are
    /// unrolled with the message schedule written out, so no array is indexed in the loop.
    /// </summary>
    [SkipLocalsInit]
    private void Compress(ReadOnlySpan<byte> block, bool last)
    {
        ref byte p = ref MemoryMarshal.GetReference(block);
        uint m0 = Load(ref p, 0), m1 = Load(ref p, 1), m2 = Load(ref p, 2), m3 = Load(ref p, 3);
        uint m4 = Load(ref p, 4), m5 = Load(ref p, 5), m6 = Load(ref p, 6), m7 = Load(ref p, 7);
        uint m8 = Load(ref p, 8), m9 = Load(ref p, 9), m10 = Load(ref p, 10), m11 = Load(ref p, 11);
        uint m12 = Load(ref p, 12), m13 = Load(ref p, 13), m14 = Load(ref p, 14), m15 = Load(ref p, 15);

        ref Vector128<uint> h = ref Unsafe.As<uint, Vector128<uint>>(ref _h[0]);
        Vector128<uint> h0 = h, h1 = Unsafe.Add(ref h, 1);
        Vector128<uint> a = h0, b = h1;
        Vector128<uint> c = Vector128.Create(IV0, IV1, IV2, IV3);
        Vector128<uint> d = Vector128.Create(IV4, IV5, IV6, IV7) ^
            Vector128.Create((uint)_counter, (uint)(_counter >> 32), last ? uint.MaxValue : 0u, 0u);

        // round 0
        G(ref a, ref b, ref c, ref d, Vector128.Create(m0, m2, m4, m6), Vector128.Create(m1, m3, m5, m7));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m8, m10, m12, m14), Vector128.Create(m9, m11, m13, m15));
        Undiagonalize(ref b, ref c, ref d);
        // round 1
        G(ref a, ref b, ref c, ref d, Vector128.Create(m14, m4, m9, m13), Vector128.Create(m10, m8, m15, m6));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m1, m0, m11, m5), Vector128.Create(m12, m2, m7, m3));
        Undiagonalize(ref b, ref c, ref d);
        // round 2
        G(ref a, ref b, ref c, ref d, Vector128.Create(m11, m12, m5, m15), Vector128.Create(m8, m0, m2, m13));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m10, m3, m7, m9), Vector128.Create(m14, m6, m1, m4));
        Undiagonalize(ref b, ref c, ref d);
        // round 3
        G(ref a, ref b, ref c, ref d, Vector128.Create(m7, m3, m13, m11), Vector128.Create(m9, m1, m12, m14));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m2, m5, m4, m15), Vector128.Create(m6, m10, m0, m8));
        Undiagonalize(ref b, ref c, ref d);
        // round 4
        G(ref a, ref b, ref c, ref d, Vector128.Create(m9, m5, m2, m10), Vector128.Create(m0, m7, m4, m15));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m14, m11, m6, m3), Vector128.Create(m1, m12, m8, m13));
        Undiagonalize(ref b, ref c, ref d);
        // round 5
        G(ref a, ref b, ref c, ref d, Vector128.Create(m2, m6, m0, m8), Vector128.Create(m12, m10, m11, m3));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m4, m7, m15, m1), Vector128.Create(m13, m5, m14, m9));
        Undiagonalize(ref b, ref c, ref d);
        // round 6
        G(ref a, ref b, ref c, ref d, Vector128.Create(m12, m1, m14, m4), Vector128.Create(m5, m15, m13, m10));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m0, m6, m9, m8), Vector128.Create(m7, m3, m2, m11));
        Undiagonalize(ref b, ref c, ref d);
        // round 7
        G(ref a, ref b, ref c, ref d, Vector128.Create(m13, m7, m12, m3), Vector128.Create(m11, m14, m1, m9));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m5, m15, m8, m2), Vector128.Create(m0, m4, m6, m10));
        Undiagonalize(ref b, ref c, ref d);
        // round 8
        G(ref a, ref b, ref c, ref d, Vector128.Create(m6, m14, m11, m0), Vector128.Create(m15, m9, m3, m8));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m12, m13, m1, m10), Vector128.Create(m2, m7, m4, m5));
        Undiagonalize(ref b, ref c, ref d);
        // round 9
        G(ref a, ref b, ref c, ref d, Vector128.Create(m10, m8, m7, m1), Vector128.Create(m2, m4, m6, m5));
        Diagonalize(ref b, ref c, ref d);
        G(ref a, ref b, ref c, ref d, Vector128.Create(m15, m9, m3, m13), Vector128.Create(m11, m14, m12, m0));
        Undiagonalize(ref b, ref c, ref d);

        h = h0 ^ a ^ c;
        Unsafe.Add(ref h, 1) = h1 ^ b ^ d;
    }
}
