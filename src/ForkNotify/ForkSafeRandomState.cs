using System.Security.Cryptography;

namespace ForkNotify;

/// <summary>
/// Everything a <see cref="ForkSafeRandom"/> is: its key, its unread output, where it is in that
/// output, and the generation it last reseeded at. Exactly what a VM snapshot copies, so restoring
/// one state into two generators makes them produce the same bytes until something reseeds them.
/// Immutable once captured; <see cref="Clear"/> wipes it when the snapshot is discarded.
/// </summary>
public sealed class ForkSafeRandomState
{
    internal ForkSafeRandomState(byte[] key, byte[] buffer, int position, ulong generationSeen, ulong pullSeen,
        long reseedAgeMillis)
    {
        PullSeen = pullSeen;
        ReseedAgeMillis = reseedAgeMillis;
        Key = key;
        Buffer = buffer;
        Position = position;
        GenerationSeen = generationSeen;
    }

    internal byte[] Key { get; }

    internal byte[] Buffer { get; }

    /// <summary>Offset of the next unread byte in the buffered output.</summary>
    public int Position { get; }

    /// <summary>The <see cref="VmGeneration"/> value the generator last reseeded at.</summary>
    public ulong GenerationSeen { get; }

    /// <summary>The pull counter value the generator last checked.</summary>
    public ulong PullSeen { get; }

    /// <summary>Milliseconds since the reseed timer last ran, at capture.</summary>
    public long ReseedAgeMillis { get; }

    /// <summary>Zeroes the captured key and output.</summary>
    public void Clear()
    {
        CryptographicOperations.ZeroMemory(Key);
        CryptographicOperations.ZeroMemory(Buffer);
    }
}
