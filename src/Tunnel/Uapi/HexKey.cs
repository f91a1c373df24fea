namespace Tunnel.Uapi;

/// <summary>Keys on the UAPI are 64 hex digits (lowercase on output; either case accepted).</summary>
public static class HexKey
{
    public const int KeyLength = 32;

    public static bool TryDecode(ReadOnlySpan<char> text, Span<byte> key)
    {
        if (text.Length != KeyLength * 2 || key.Length != KeyLength)
            return false;
        for (var i = 0; i < KeyLength; i++)
        {
            var hi = Nibble(text[2 * i]);
            var lo = Nibble(text[2 * i + 1]);
            if ((hi | lo) < 0)
            {
                key.Clear();
                return false;
            }
            key[i] = (byte)(hi << 4 | lo);
        }
        return true;
    }

    /// <summary>Writes 64 lowercase hex digits into <paramref name="destination"/>.</summary>
    public static void Encode(ReadOnlySpan<byte> key, Span<char> destination)
    {
        const string digits = "0123456789abcdef";
        for (var i = 0; i < key.Length; i++)
        {
            destination[2 * i] = digits[key[i] >> 4];
            destination[2 * i + 1] = digits[key[i] & 0xf];
        }
    }

    private static int Nibble(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
