using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Tunnel.Crypto;

/// <summary>
/// An X25519 public key (32 bytes). A value type with equality and hashing, so a device can look
/// peers up by public key without allocating. Public keys are not secret and may be printed.
/// </summary>
public readonly struct PublicKey : IEquatable<PublicKey>
{
    public const int Size = 32;

    [InlineArray(Size)]
    private struct Bytes32 { private byte _first; }

    private readonly Bytes32 _bytes;

    public PublicKey(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
            throw new ArgumentException($"A public key is {Size} bytes, not {bytes.Length}.", nameof(bytes));
        bytes.CopyTo(_bytes);
    }

    /// <summary>The key bytes; the span refers to this value, so keep the value alive while using it.</summary>
    [UnscopedRef]
    public ReadOnlySpan<byte> Bytes => _bytes;

    public bool IsZero => Bytes.IndexOfAnyExcept((byte)0) < 0;

    public void CopyTo(Span<byte> destination) => Bytes.CopyTo(destination);

    public static PublicKey FromBase64(string base64) => new(Convert.FromBase64String(base64));

    public string ToBase64() => Convert.ToBase64String(Bytes);

    public string ToHex() => Convert.ToHexStringLower(Bytes);

    public bool Equals(PublicKey other) => Bytes.SequenceEqual(other.Bytes);

    public override bool Equals(object? obj) => obj is PublicKey other && Equals(other);

    public override int GetHashCode()
    {
        // All 32 bytes, with the process's random seed: a hub's keys come from files and tools,
        // and keys that differ in only a few bytes (generated ones, say) all collided when 8 bytes
        // made the hash, which turned every peer lookup among 50,000 into a list walk.
        var hash = new HashCode();
        hash.AddBytes(Bytes);
        return hash.ToHashCode();
    }

    public static bool operator ==(PublicKey left, PublicKey right) => left.Equals(right);
    public static bool operator !=(PublicKey left, PublicKey right) => !left.Equals(right);

    public override string ToString() => ToBase64();
}
