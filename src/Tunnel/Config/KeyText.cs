namespace Tunnel.Config;

/// <summary>
/// The base64 form of a 32-byte Curve25519 key, as <c>wg genkey</c> prints it: exactly 44
/// characters ending in one '='. Anything else (wrong length, bad alphabet, 33 bytes) is refused.
/// </summary>
public static class KeyText
{
    public const int KeyLength = 32;
    public const int Base64Length = 44;

    public static bool TryDecodeBase64(ReadOnlySpan<char> text, Span<byte> key)
    {
        if (key.Length != KeyLength || text.Length != Base64Length || text[^1] != '=' || text[^2] == '=')
            return false;
        return Convert.TryFromBase64Chars(text, key, out var written) && written == KeyLength;
    }

    public static string EncodeBase64(ReadOnlySpan<byte> key) => Convert.ToBase64String(key);
}
