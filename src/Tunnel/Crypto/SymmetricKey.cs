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

    /// <summary>
    /// Sets <paramref name="key"/> to <paramref name="bytes"/>, leaving it null while it is and
    /// stays all zeros (no preshared key): most peers of a big hub have none, and each key is
    /// 104 bytes of heap. A key once made is kept (and zeroed) rather than dropped, so no copy of
    /// the secret is left to the GC.
    /// </summary>
    public static void SetOrNone(ref SymmetricKey? key, ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"A symmetric key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        if (key is null && bytes.IndexOfAnyExcept((byte)0) < 0)
            return; // none, and none before: nothing to hold
        (key ??= new SymmetricKey()).Set(bytes);
    }

    public void Clear() => _secret.Clear();

    public void Dispose() => _secret.Dispose();

    public override string ToString() => "SymmetricKey(32 bytes)";
}
