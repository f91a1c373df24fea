using System.Security.Cryptography;

namespace Tunnel.Crypto;

/// <summary>
/// A fixed-size buffer for secret bytes in pinned memory (the GC never moves it, so no stale copy
/// is left behind), zeroed by <see cref="Clear"/> and <see cref="Dispose"/>. Never printed.
/// </summary>
public sealed class SecretBuffer : IDisposable
{
    private readonly byte[] _bytes;

    public SecretBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        _bytes = GC.AllocateArray<byte>(length, pinned: true);
    }

    public int Length => _bytes.Length;

    public Span<byte> Span => _bytes;

    /// <summary>Zeroes the contents; the buffer stays usable.</summary>
    public void Clear() => CryptographicOperations.ZeroMemory(_bytes);

    public void Dispose() => Clear();

    public override string ToString() => $"SecretBuffer({_bytes.Length} bytes)";
}
