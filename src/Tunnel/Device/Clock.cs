using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Tunnel.Device;

/// <summary>
/// Where the protocol reads time. Every timer of the whitepaper is measured on
/// <see cref="MonotonicNanos"/>; only TAI64N timestamps use <see cref="UtcNow"/>. Injectable so
/// tests run in virtual time and never sleep.
/// </summary>
public interface IClock
{
    /// <summary>Nanoseconds on a clock that never goes backwards. Only differences are meaningful.</summary>
    long MonotonicNanos { get; }

    /// <summary>Wall-clock time, for TAI64N. May jump (and may be stale after a VM restore).</summary>
    DateTimeOffset UtcNow { get; }
}

/// <summary>
/// The machine's clocks. On Linux the monotonic clock is CLOCK_BOOTTIME, which keeps counting while
/// the machine is suspended (as the kernel's ktime_get_coarse_boottime_ns does for WireGuard):
/// a session must expire after REJECT_AFTER_TIME of real time, asleep or not. Elsewhere it falls
/// back to <see cref="Stopwatch"/>.
/// </summary>
public sealed partial class SystemClock : IClock
{
    public static readonly SystemClock Instance = new();

    private const int ClockBoottime = 7; // <linux/time.h> CLOCK_BOOTTIME

    private readonly bool _useBoottime;

    private SystemClock()
    {
        _useBoottime = OperatingSystem.IsLinux() && TryReadBoottime(out _);
    }

    /// <summary>True when the monotonic clock is CLOCK_BOOTTIME (Linux), false when it is Stopwatch.</summary>
    internal bool UsesBoottime => _useBoottime;

    public long MonotonicNanos =>
        _useBoottime && TryReadBoottime(out long nanos) ? nanos : StopwatchNanos();

    public DateTimeOffset UtcNow => DateTimeOffset.UtcNow;

    private static long StopwatchNanos()
    {
        long ticks = Stopwatch.GetTimestamp();
        // Split to avoid overflowing ticks * 1e9 on high-frequency timers.
        long seconds = ticks / Stopwatch.Frequency;
        long remainder = ticks % Stopwatch.Frequency;
        return seconds * Constants.NanosPerSecond + remainder * Constants.NanosPerSecond / Stopwatch.Frequency;
    }

    private static bool TryReadBoottime(out long nanos)
    {
        try
        {
            if (clock_gettime(ClockBoottime, out Timespec ts) == 0)
            {
                nanos = ts.Seconds * Constants.NanosPerSecond + ts.Nanoseconds;
                return true;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        nanos = 0;
        return false;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Seconds;     // time_t on 64-bit Linux
        public long Nanoseconds; // long
    }

    [LibraryImport("libc", SetLastError = false)]
    private static partial int clock_gettime(int clockId, out Timespec timespec);
}

/// <summary>
/// A clock that moves only when a test tells it to. The wall clock moves in step with the monotonic
/// clock, and can also be set on its own, to model a VM restored with a stale wall clock.
/// Safe to read from any thread while one thread advances it.
/// </summary>
public sealed class VirtualClock : IClock
{
    /// <summary>
    /// Default start of the monotonic clock: deliberately not zero, so that code which mistakes 0 for
    /// "never" shows up in virtual-time tests.
    /// </summary>
    public const long DefaultStartNanos = 1_000 * Constants.NanosPerSecond;

    /// <summary>Default wall clock at start: a fixed instant, so runs are reproducible.</summary>
    public static readonly DateTimeOffset DefaultStartUtc = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly Lock _lock = new();
    private long _monotonicNanos;
    // The wall clock is an anchor plus the monotonic time elapsed since it was set, so that many
    // small advances add up exactly instead of each losing its sub-tick remainder.
    private long _utcAnchorTicks;
    private long _utcAnchorMonotonicNanos;

    public VirtualClock() : this(DefaultStartNanos, DefaultStartUtc) { }

    public VirtualClock(long startNanos, DateTimeOffset startUtc)
    {
        _monotonicNanos = startNanos;
        _utcAnchorTicks = startUtc.UtcTicks;
        _utcAnchorMonotonicNanos = startNanos;
    }

    public long MonotonicNanos => Volatile.Read(ref _monotonicNanos);

    public DateTimeOffset UtcNow
    {
        get
        {
            lock (_lock)
            {
                long elapsedTicks = (_monotonicNanos - _utcAnchorMonotonicNanos) / 100;
                return new DateTimeOffset(_utcAnchorTicks + elapsedTicks, TimeSpan.Zero);
            }
        }
    }

    /// <summary>Moves both clocks forward by <paramref name="by"/> (which must not be negative).</summary>
    public void Advance(TimeSpan by) => AdvanceNanos(checked(by.Ticks * 100));

    /// <summary>Moves both clocks forward by <paramref name="nanos"/> (which must not be negative).</summary>
    public void AdvanceNanos(long nanos)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nanos);
        lock (_lock)
        {
            Volatile.Write(ref _monotonicNanos, checked(_monotonicNanos + nanos));
        }
    }

    /// <summary>Sets the wall clock alone (backwards or forwards); the monotonic clock is untouched.</summary>
    public void SetUtcNow(DateTimeOffset utcNow)
    {
        lock (_lock)
        {
            _utcAnchorTicks = utcNow.UtcTicks;
            _utcAnchorMonotonicNanos = _monotonicNanos;
        }
    }
}
