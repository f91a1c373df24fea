namespace Tunnel.Crypto;

/// <summary>
/// A 32-byte symmetric secret: a preshared key, or one direction's ChaCha20-Poly1305 transport key.
/// Pinned, zeroed on <see cref="Clear"/>/<see cref="Dispose"/>, never printed.
/// </summary>
public sealed class SymmetricKey : IDisposable
{
    public const int Size = 32;

    private readonly SecretBuffer _secret = new(Size);

    /// <summary>An all-zero key (WireGuard's "no preshared key").</summary>
    public SymmetricKey() { }

    public SymmetricKey(ReadOnlySpan<byte> bytes) => Set(bytes);

    internal ReadOnlySpan<byte> Bytes => _secret.Span;

    public void Set(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"A symmetric key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        bytes.CopyTo(_secret.Span);
    }

    public void Clear() => _secret.Clear();

    public void Dispose() => _secret.Dispose();

    public override string ToString() => "SymmetricKey(32 bytes)";
}
