using System.Security.Cryptography;

namespace Tunnel.Crypto;

/// <summary>
/// The whitepaper's KDF_n (HKDF with HMAC-BLAKE2s, section 5.4):
/// t0 = HMAC(key, input); t1 = HMAC(t0, 0x1); t(i) = HMAC(t0, t(i-1) || i). Outputs are 32 bytes
/// each and may alias <paramref name="key"/> (the chaining key is usually replaced by t1).
/// </summary>
public static class Kdf
{
    public const int OutputSize = Blake2s.HashSize;

    public static void Kdf1(Span<byte> t1, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input) =>
        Derive(key, input, t1, default, default);

    public static void Kdf2(Span<byte> t1, Span<byte> t2, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input) =>
        Derive(key, input, t1, t2, default);

    public static void Kdf3(Span<byte> t1, Span<byte> t2, Span<byte> t3, ReadOnlySpan<byte> key, ReadOnlySpan<byte> input) =>
        Derive(key, input, t1, t2, t3);

    private static void Derive(ReadOnlySpan<byte> key, ReadOnlySpan<byte> input, Span<byte> t1, Span<byte> t2, Span<byte> t3)
    {
        Span<byte> prk = stackalloc byte[OutputSize];
        Span<byte> previous = stackalloc byte[OutputSize];
        // key and input may alias the outputs, so nothing is written out before prk is computed.
        HmacBlake2s.Compute(key, input, prk);
        // Every output is an HMAC under prk: its pads are compressed once, each output starts
        // from a copy (two BLAKE2s compressions fewer per output after the first).
        HmacBlake2s underPrk = HmacBlake2s.Init(prk);

        Expand(underPrk, previous, 1, first: true);
        previous.CopyTo(t1);
        if (!t2.IsEmpty || !t3.IsEmpty)
        {
            Expand(underPrk, previous, 2, first: false);
            if (!t2.IsEmpty) previous.CopyTo(t2);
        }
        if (!t3.IsEmpty)
        {
            Expand(underPrk, previous, 3, first: false);
            previous.CopyTo(t3);
        }
        underPrk.Clear();
        CryptographicOperations.ZeroMemory(prk);
        CryptographicOperations.ZeroMemory(previous);
    }

    // previous := HMAC(prk, counter) for the first output, HMAC(prk, previous || counter) after.
    private static void Expand(in HmacBlake2s underPrk, Span<byte> previous, byte counter, bool first)
    {
        HmacBlake2s mac = underPrk; // a copy: Final zeroes it, the original stays for the next output
        if (!first)
            mac.Update(previous);
        mac.Update([counter]);
        mac.Final(previous);
    }
}
