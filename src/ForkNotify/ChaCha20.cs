using System.Buffers.Binary;
using System.Numerics;

namespace ForkNotify;

/// <summary>
/// The ChaCha20 block function of RFC 8439 (section 2.3), used only as the keystream of
/// <see cref="ForkSafeRandom"/>. Written here because ForkNotify depends on nothing native.
/// </summary>
internal static class ChaCha20
{
    public const int KeySize = 32;
    public const int NonceSize = 12;
    public const int BlockSize = 64;

    /// <summary>Writes <c>output.Length / 64</c> keystream blocks starting at block <paramref name="counter"/>.</summary>
    public static void Keystream(ReadOnlySpan<byte> key, uint counter, ReadOnlySpan<byte> nonce, Span<byte> output)
    {
        if (key.Length != KeySize || nonce.Length != NonceSize || output.Length % BlockSize != 0)
            throw new ArgumentException("ChaCha20 needs a 32-byte key, a 12-byte nonce and whole blocks");
        Span<uint> state = stackalloc uint[16];
        state[0] = 0x61707865; state[1] = 0x3320646e; state[2] = 0x79622d32; state[3] = 0x6b206574;
        for (int i = 0; i < 8; i++)
            state[4 + i] = BinaryPrimitives.ReadUInt32LittleEndian(key[(4 * i)..]);
        for (int i = 0; i < 3; i++)
            state[13 + i] = BinaryPrimitives.ReadUInt32LittleEndian(nonce[(4 * i)..]);
        Span<uint> x = stackalloc uint[16];
        for (int offset = 0; offset < output.Length; offset += BlockSize)
        {
            state[12] = counter++;
            state.CopyTo(x);
            for (int round = 0; round < 10; round++)
            {
                QuarterRound(x, 0, 4, 8, 12); QuarterRound(x, 1, 5, 9, 13);
                QuarterRound(x, 2, 6, 10, 14); QuarterRound(x, 3, 7, 11, 15);
                QuarterRound(x, 0, 5, 10, 15); QuarterRound(x, 1, 6, 11, 12);
                QuarterRound(x, 2, 7, 8, 13); QuarterRound(x, 3, 4, 9, 14);
            }
            Span<byte> block = output.Slice(offset, BlockSize);
            for (int i = 0; i < 16; i++)
                BinaryPrimitives.WriteUInt32LittleEndian(block[(4 * i)..], x[i] + state[i]);
        }
        x.Clear();
        state.Clear();
    }

    private static void QuarterRound(Span<uint> x, int a, int b, int c, int d)
    {
        x[a] += x[b]; x[d] = BitOperations.RotateLeft(x[d] ^ x[a], 16);
        x[c] += x[d]; x[b] = BitOperations.RotateLeft(x[b] ^ x[c], 12);
        x[a] += x[b]; x[d] = BitOperations.RotateLeft(x[d] ^ x[a], 8);
        x[c] += x[d]; x[b] = BitOperations.RotateLeft(x[b] ^ x[c], 7);
    }
}
