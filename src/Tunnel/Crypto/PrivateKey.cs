using ForkNotify;

namespace Tunnel.Crypto;

/// <summary>
/// An X25519 private key in a pinned, zero-on-dispose buffer, with its public key computed once.
/// The secret bytes are reachable only inside this assembly (the UAPI may print them on request,
/// nothing else should) and <see cref="ToString"/> never shows them.
/// </summary>
public sealed class PrivateKey : IDisposable
{
    public const int Size = 32;

    private readonly SecretBuffer _secret = new(Size);

    private PrivateKey(ReadOnlySpan<byte> secret)
    {
        secret.CopyTo(_secret.Span);
        Clamp(_secret.Span);
        Span<byte> pub = stackalloc byte[PublicKey.Size];
        Sodium.ScalarMultBase(pub, _secret.Span);
        PublicKey = new PublicKey(pub);
    }

    public PublicKey PublicKey { get; }

    internal ReadOnlySpan<byte> Secret => _secret.Span;

    /// <summary>A new key from <paramref name="random"/> (clamped as curve25519 requires).</summary>
    public static PrivateKey Generate(IRandomGenerator random)
    {
        Span<byte> bytes = stackalloc byte[Size];
        random.Fill(bytes);
        try { return new PrivateKey(bytes); }
        finally { Sodium.MemZero(bytes); }
    }

    /// <summary>Imports 32 key bytes (e.g. from a config file); the caller zeroes its copy.</summary>
    public static PrivateKey Import(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"A private key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        return new PrivateKey(bytes);
    }

    /// <summary>
    /// X25519(this, peer) into <paramref name="sharedSecret"/>; false for an all-zero result (a
    /// low-order peer key), which WireGuard treats as a failed handshake.
    /// </summary>
    public bool TryAgree(PublicKey peer, Span<byte> sharedSecret) =>
        Sodium.ScalarMult(sharedSecret, _secret.Span, peer.Bytes);

    /// <summary>Clamps a curve25519 scalar in place (RFC 7748 section 5), as wireguard-go stores keys.</summary>
    public static void Clamp(Span<byte> scalar)
    {
        scalar[0] &= 248;
        scalar[31] = (byte)((scalar[31] & 127) | 64);
    }

    public void Dispose() => _secret.Dispose();

    public override string ToString() => $"PrivateKey(public {PublicKey})";
}
