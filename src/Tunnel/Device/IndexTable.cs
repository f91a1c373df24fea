using System.Buffers.Binary;
using System.Collections.Concurrent;
using ForkNotify;

namespace Tunnel.Device;

/// <summary>
/// The device's session indexes (whitepaper 5.4.2: sender/receiver index): random 32-bit values,
/// each naming one live handshake or keypair, so a received message finds its state in one lookup
/// instead of by its sender's address. Like the kernel's index_hashtable (peerlookup.c) and
/// wireguard-go's indextable.go.
/// </summary>
/// <remarks>
/// Indexes come from an injected <see cref="IRandomGenerator"/> (so a fork simulation can copy and
/// reseed it) and are never 0, which callers may use to mean "no index". Lookups are lock-free and
/// allocate nothing (they run for every received packet, on any thread); inserts, replacements and
/// removals serialize on a lock. Entries are compared by reference.
/// </remarks>
public sealed class IndexTable<TEntry> where TEntry : class
{
    // A generator that keeps drawing used values is broken; fail loudly rather than spin forever.
    private const int MaxDraws = 1 << 16;

    private readonly IRandomGenerator _random;
    private readonly Lock _writeLock = new();
    private readonly ConcurrentDictionary<uint, TEntry> _entries = new();

    public IndexTable(IRandomGenerator random)
    {
        ArgumentNullException.ThrowIfNull(random);
        _random = random;
    }

    /// <summary>Number of registered indexes.</summary>
    public int Count => _entries.Count;

    /// <summary>Registers <paramref name="entry"/> under a fresh random index, unused and non-zero, and returns it.</summary>
    /// <exception cref="InvalidOperationException">The random generator produced only used indexes.</exception>
    public uint Insert(TEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        Span<byte> bytes = stackalloc byte[sizeof(uint)];
        lock (_writeLock)
        {
            // Drawing under the lock also serializes use of a generator that is not thread-safe.
            for (int draw = 0; draw < MaxDraws; draw++)
            {
                _random.Fill(bytes);
                uint index = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
                if (index != 0 && _entries.TryAdd(index, entry))
                    return index;
            }
        }
        throw new InvalidOperationException(
            $"The random generator returned {MaxDraws} session indexes that were all zero or in use.");
    }

    /// <summary>The entry registered under <paramref name="index"/>, or null. Lock-free, no allocation.</summary>
    public TEntry? Lookup(uint index) => _entries.TryGetValue(index, out TEntry? entry) ? entry : null;

    /// <summary>
    /// Hands <paramref name="index"/> over from <paramref name="current"/> to <paramref name="replacement"/>
    /// (a completed handshake's index becomes its keypair's), only if <paramref name="current"/> still
    /// holds it. True if replaced.
    /// </summary>
    public bool Replace(uint index, TEntry current, TEntry replacement)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(replacement);
        lock (_writeLock)
        {
            if (!_entries.TryGetValue(index, out TEntry? held) || !ReferenceEquals(held, current))
                return false;
            _entries[index] = replacement;
            return true;
        }
    }

    /// <summary>Every (index, entry), for a VM-snapshot capture.</summary>
    internal KeyValuePair<uint, TEntry>[] Entries() => _entries.ToArray();

    /// <summary>Registers <paramref name="entry"/> under a given index (restoring a snapshot). False if taken or 0.</summary>
    internal bool TryInsertAt(uint index, TEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_writeLock)
            return index != 0 && _entries.TryAdd(index, entry);
    }

    /// <summary>Forgets every index (restoring a snapshot).</summary>
    internal void Clear()
    {
        lock (_writeLock)
            _entries.Clear();
    }

    /// <summary>Frees <paramref name="index"/>, only if <paramref name="entry"/> still holds it. True if removed.</summary>
    public bool Remove(uint index, TEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_writeLock)
        {
            if (!_entries.TryGetValue(index, out TEntry? held) || !ReferenceEquals(held, entry))
                return false;
            return _entries.TryRemove(index, out _);
        }
    }
}
