using System.Buffers.Binary;

namespace Tunnel.Device;

/// <summary>
/// A TAI64N timestamp as the initiation carries it: 12 bytes, big-endian, seconds = 2^62 + 10 +
/// Unix seconds, then nanoseconds. The responder accepts an initiation only if its timestamp is
/// strictly greater than the last one it accepted from that peer (replay protection).
/// </summary>
/// <remarks>
/// Like wireguard-go, the nanoseconds are rounded down to a multiple of 2^24 ns (about 16.8 ms)
/// so the timestamp does not reveal the sender's clock precisely. Wall-clock time is passed in,
/// never read here, so tests (and a VM restored with a stale clock) can choose it.
/// </remarks>
public readonly struct Tai64N : IComparable<Tai64N>, IEquatable<Tai64N>
{
    public const int Size = 12;

    /// <summary>TAI64 label of the Unix epoch: 2^62 plus the 10 s TAI-UTC offset of 1970.</summary>
    public const ulong Base = 0x400000000000000A;

    private const uint WhitenerMask = 0x1000000 - 1;
    private const ulong NanosPerSecond = 1_000_000_000;

    public Tai64N(ulong seconds, uint nanoseconds)
    {
        Seconds = seconds;
        Nanoseconds = nanoseconds;
    }

    public ulong Seconds { get; }
    public uint Nanoseconds { get; }

    /// <summary>The whitened timestamp of a wall-clock instant.</summary>
    public static Tai64N FromDateTime(DateTimeOffset wallClock)
    {
        long ticksSinceEpoch = wallClock.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;
        long unixSeconds = Math.DivRem(ticksSinceEpoch, TimeSpan.TicksPerSecond, out long remainderTicks);
        if (remainderTicks < 0)
        {
            unixSeconds--;
            remainderTicks += TimeSpan.TicksPerSecond;
        }
        uint nanos = (uint)(remainderTicks * TimeSpan.NanosecondsPerTick);
        return new Tai64N(Base + (ulong)unixSeconds, nanos & ~WhitenerMask);
    }

    /// <summary>
    /// The smallest whitened timestamp after this one (2^24 ns later, carrying into the seconds).
    /// A sender whose wall clock went backwards (a VM restored from an old snapshot) sends this
    /// instead, so its peer still sees a strictly newer timestamp and accepts the initiation.
    /// </summary>
    public Tai64N NextWhitened()
    {
        ulong nanos = (Nanoseconds & ~WhitenerMask) + WhitenerMask + 1UL;
        return nanos >= NanosPerSecond
            ? new Tai64N(Seconds + 1, 0)
            : new Tai64N(Seconds, (uint)nanos);
    }

    public static Tai64N Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(source), BinaryPrimitives.ReadUInt32BigEndian(source[8..]));

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, Seconds);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], Nanoseconds);
    }

    /// <summary>True if this is strictly later than <paramref name="other"/>.</summary>
    public bool After(Tai64N other) => CompareTo(other) > 0;

    public int CompareTo(Tai64N other)
    {
        int bySeconds = Seconds.CompareTo(other.Seconds);
        return bySeconds != 0 ? bySeconds : Nanoseconds.CompareTo(other.Nanoseconds);
    }

    public bool Equals(Tai64N other) => Seconds == other.Seconds && Nanoseconds == other.Nanoseconds;
    public override bool Equals(object? obj) => obj is Tai64N other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(Seconds, Nanoseconds);
    public static bool operator ==(Tai64N left, Tai64N right) => left.Equals(right);
    public static bool operator !=(Tai64N left, Tai64N right) => !left.Equals(right);
    public override string ToString() => $"TAI64N({Seconds:x16}.{Nanoseconds:x8})";
}
