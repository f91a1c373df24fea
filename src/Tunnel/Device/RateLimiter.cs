using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;

namespace Tunnel.Device;

/// <summary>
/// Per-source token bucket for handshake messages under load (whitepaper 5.3; the kernel's
/// ratelimiter.c). The kernel applies it once a handshake message has a valid mac2, i.e. only when
/// the device is under load and the source has proved its address with a cookie. IPv4 sources are
/// keyed by address; IPv6 sources by their /64, since one host usually owns a whole /64.
/// </summary>
/// <remarks>
/// <para>Defaults are the kernel's and wireguard-go's: 20 packets per second with a burst of 5.
/// The whitepaper's 50 per second (<see cref="Constants.InitiationsPerSecond"/>) is a different
/// limit: how often a responder consumes an initiation from one <em>peer</em> (kernel noise.c,
/// checked after decryption), which belongs to the handshake code, not here.</para>
/// <para>As in the kernel, the burst is part of the bucket's size rather than of the rate: a new
/// source starts with a full bucket minus the packet it just sent. Entries idle for longer than it
/// takes a bucket to refill are dropped by <see cref="CollectGarbage"/>, which loses nothing, since
/// such an entry answers exactly as a new one. Time comes from the <see cref="IClock"/>.
/// Thread-safe; a known source costs no allocation.</para>
/// </remarks>
public sealed class RateLimiter
{
    public const int DefaultPacketsPerSecond = 20;
    public const int DefaultPacketsBurstable = 5;

    /// <summary>Kernel: 8 entries per bucket of an 8192-bucket table on machines with over 1 GiB.</summary>
    public const int DefaultMaxEntries = 8192 * 8;

    /// <summary>How often <see cref="Allow(ReadOnlySpan{byte})"/> sweeps idle entries by itself (kernel: every second).</summary>
    public const long GarbageCollectionIntervalNanos = Constants.NanosPerSecond;

    private readonly IClock _clock;
    private readonly long _packetCost;   // nanoseconds of tokens one packet costs
    private readonly long _tokenMax;     // bucket size, in nanoseconds of tokens
    private readonly long _idleLimit;    // an entry idle this long is full again, so droppable
    private readonly int _maxEntries;
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, Bucket> _v4 = new(SeededComparer.Instance);
    private readonly Dictionary<ulong, Bucket> _v6 = new(SeededComparer.Instance);
    private long _lastCollection;

    private struct Bucket
    {
        public long LastNanos;
        public long Tokens;
    }

    public RateLimiter(IClock clock,
        int packetsPerSecond = DefaultPacketsPerSecond,
        int packetsBurstable = DefaultPacketsBurstable,
        int maxEntries = DefaultMaxEntries)
    {
        ArgumentNullException.ThrowIfNull(clock);
        ArgumentOutOfRangeException.ThrowIfLessThan(packetsPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(packetsBurstable, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        _clock = clock;
        _packetCost = Constants.NanosPerSecond / packetsPerSecond;
        _tokenMax = _packetCost * packetsBurstable;
        _idleLimit = Math.Max(Constants.NanosPerSecond, _tokenMax);
        _maxEntries = maxEntries;
        _lastCollection = clock.MonotonicNanos;
    }

    /// <summary>Number of sources currently tracked.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return _v4.Count + _v6.Count;
        }
    }

    /// <summary>
    /// True if a handshake message from <paramref name="sourceAddress"/> (4 or 16 bytes, network
    /// order; IPv4-mapped IPv6 counts as IPv4) may be processed now, and charges its bucket. False
    /// for any other length, and for a new source once <c>maxEntries</c> sources are tracked.
    /// </summary>
    public bool Allow(ReadOnlySpan<byte> sourceAddress)
    {
        if (sourceAddress.Length == 4)
        {
            uint key = BinaryPrimitives.ReadUInt32BigEndian(sourceAddress);
            lock (_lock)
                return Charge(_v4, key);
        }
        if (sourceAddress.Length == 16 && IsIPv4Mapped(sourceAddress))
            return Allow(sourceAddress[12..]);
        if (sourceAddress.Length == 16)
        {
            // Only the /64: a host can pick any address within its subnet.
            ulong key = BinaryPrimitives.ReadUInt64BigEndian(sourceAddress);
            lock (_lock)
                return Charge(_v6, key);
        }
        return false;
    }

    /// <inheritdoc cref="Allow(ReadOnlySpan{byte})"/>
    public bool Allow(IPAddress sourceAddress)
    {
        ArgumentNullException.ThrowIfNull(sourceAddress);
        Span<byte> bytes = stackalloc byte[16];
        return sourceAddress.TryWriteBytes(bytes, out int written) && Allow(bytes[..written]);
    }

    /// <summary>Drops the entries of sources idle long enough to have a full bucket again.</summary>
    public void CollectGarbage()
    {
        lock (_lock)
            CollectLocked(_clock.MonotonicNanos);
    }

    /// <summary>Forgets every source.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            _v4.Clear();
            _v6.Clear();
        }
    }

    /// <summary>Every bucket and the last sweep time, for a VM-snapshot capture.</summary>
    internal RateLimiterState Capture()
    {
        lock (_lock)
        {
            return new RateLimiterState(
                _v4.Select(e => (e.Key, e.Value.LastNanos, e.Value.Tokens)).ToArray(),
                _v6.Select(e => (e.Key, e.Value.LastNanos, e.Value.Tokens)).ToArray(),
                _lastCollection);
        }
    }

    internal void Restore(RateLimiterState state)
    {
        lock (_lock)
        {
            _v4.Clear();
            _v6.Clear();
            foreach ((uint key, long last, long tokens) in state.V4)
                _v4[key] = new Bucket { LastNanos = last, Tokens = tokens };
            foreach ((ulong key, long last, long tokens) in state.V6)
                _v6[key] = new Bucket { LastNanos = last, Tokens = tokens };
            _lastCollection = state.LastCollection;
        }
    }

    /// <summary>
    /// ::ffff:a.b.c.d, as a dual-stack socket reports IPv4 senders. Keyed by /64, every IPv4 sender
    /// would share one bucket; they are charged as the IPv4 addresses they are.
    /// </summary>
    private static bool IsIPv4Mapped(ReadOnlySpan<byte> address) =>
        BinaryPrimitives.ReadUInt64BigEndian(address) == 0
        && BinaryPrimitives.ReadUInt32BigEndian(address[8..]) == 0x0000FFFF;

    private bool Charge<TKey>(Dictionary<TKey, Bucket> table, TKey key) where TKey : notnull
    {
        long now = _clock.MonotonicNanos;
        if (now - _lastCollection >= GarbageCollectionIntervalNanos)
            CollectLocked(now);

        ref Bucket bucket = ref CollectionsMarshal.GetValueRefOrNullRef(table, key);
        if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref bucket))
        {
            // Refill by the time elapsed (capped at the bucket size), then try to pay.
            long elapsed = Math.Max(0, now - bucket.LastNanos);
            long tokens = Math.Min(_tokenMax, bucket.Tokens + Math.Min(elapsed, _tokenMax));
            bucket.LastNanos = now;
            bool allowed = tokens >= _packetCost;
            bucket.Tokens = allowed ? tokens - _packetCost : tokens;
            return allowed;
        }

        if (_v4.Count + _v6.Count >= _maxEntries)
            return false;
        table.Add(key, new Bucket { LastNanos = now, Tokens = _tokenMax - _packetCost });
        return true;
    }

    private void CollectLocked(long now)
    {
        _lastCollection = now;
        foreach (KeyValuePair<uint, Bucket> entry in _v4)
        {
            if (now - entry.Value.LastNanos > _idleLimit)
                _v4.Remove(entry.Key); // allowed while enumerating since .NET Core 3.0
        }
        foreach (KeyValuePair<ulong, Bucket> entry in _v6)
        {
            if (now - entry.Value.LastNanos > _idleLimit)
                _v6.Remove(entry.Key);
        }
    }

    /// <summary>
    /// Hashes keys with a per-process random seed (System.HashCode), so that a remote sender cannot
    /// choose source addresses that all land in one bucket (the kernel keys its table with siphash).
    /// </summary>
    private sealed class SeededComparer : IEqualityComparer<uint>, IEqualityComparer<ulong>
    {
        public static readonly SeededComparer Instance = new();

        public bool Equals(uint x, uint y) => x == y;
        public int GetHashCode(uint value) => HashCode.Combine(value);
        public bool Equals(ulong x, ulong y) => x == y;
        public int GetHashCode(ulong value) => HashCode.Combine(value);
    }
}

/// <summary>A <see cref="RateLimiter"/>'s buckets (address key, last refill, tokens) and last sweep.</summary>
internal sealed record RateLimiterState(
    (uint Key, long LastNanos, long Tokens)[] V4,
    (ulong Key, long LastNanos, long Tokens)[] V6,
    long LastCollection);
