using System.Security.Cryptography;
using ForkNotify;
using Tunnel.Config;
using Tunnel.Crypto;

namespace Tunneld;

/// <summary><c>genkey</c> and <c>pubkey</c>, with the input and output of <c>wg genkey</c> / <c>wg pubkey</c>.</summary>
internal static class KeyCommands
{
    public static int GenKey(TextWriter output)
    {
        Span<byte> key = stackalloc byte[KeyText.KeyLength];
        OsRandomGenerator.Instance.Fill(key);
        // X25519 clamping (RFC 7748 section 5), as wg genkey does, so the printed key is already in
        // the form every implementation would use it in.
        key[0] &= 248;
        key[31] &= 127;
        key[31] |= 64;
        output.WriteLine(KeyText.EncodeBase64(key));
        CryptographicOperations.ZeroMemory(key);
        return 0;
    }

    public static int PubKey(TextReader input, TextWriter output, TextWriter error)
    {
        var line = input.ReadLine()?.Trim() ?? "";
        var key = new byte[KeyText.KeyLength];
        try
        {
            if (!KeyText.TryDecodeBase64(line, key))
            {
                error.WriteLine("tunneld: pubkey: stdin is not a base64 32-byte private key");
                return 1;
            }
            // PrivateKey clamps its copy first, as wg pubkey does, so an unclamped key gives the
            // same public key everywhere.
            using var privateKey = PrivateKey.Import(key);
            output.WriteLine(privateKey.PublicKey.ToBase64());
            return 0;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
