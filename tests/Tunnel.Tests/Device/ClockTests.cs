using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public sealed class ClockTests
{
    [Fact]
    public void VirtualClockMovesOnlyWhenAdvancedAndBothClocksInStep()
    {
        var clock = new VirtualClock();
        long mono = clock.MonotonicNanos;
        DateTimeOffset utc = clock.UtcNow;
        Assert.NotEqual(0, mono); // not zero on purpose, see DefaultStartNanos
        Assert.Equal(VirtualClock.DefaultStartUtc, utc);
        Assert.Equal(mono, clock.MonotonicNanos);

        clock.Advance(TimeSpan.FromSeconds(120));
        Assert.Equal(mono + Constants.RekeyAfterTimeNanos, clock.MonotonicNanos);
        Assert.Equal(utc + TimeSpan.FromSeconds(120), clock.UtcNow);

        clock.AdvanceNanos(250);
        Assert.Equal(mono + Constants.RekeyAfterTimeNanos + 250, clock.MonotonicNanos);
    }

    [Fact]
    public void ManySmallAdvancesAddUpOnTheWallClock()
    {
        var clock = new VirtualClock(0, VirtualClock.DefaultStartUtc);
        for (int i = 0; i < 1000; i++)
            clock.AdvanceNanos(1); // far below the wall clock's 100 ns tick
        Assert.Equal(1000, clock.MonotonicNanos);
        Assert.Equal(VirtualClock.DefaultStartUtc.AddTicks(10), clock.UtcNow);
    }

    [Fact]
    public void WallClockCanBeSetAloneLikeAStaleRestoredVm()
    {
        var clock = new VirtualClock();
        long mono = clock.MonotonicNanos;
        DateTimeOffset stale = VirtualClock.DefaultStartUtc - TimeSpan.FromDays(3);

        clock.SetUtcNow(stale);
        Assert.Equal(stale, clock.UtcNow);
        Assert.Equal(mono, clock.MonotonicNanos);

        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(stale + TimeSpan.FromSeconds(5), clock.UtcNow);
    }

    [Fact]
    public void VirtualClockRefusesToGoBackwards()
    {
        var clock = new VirtualClock();
        long mono = clock.MonotonicNanos;
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.AdvanceNanos(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.Advance(TimeSpan.FromTicks(-1)));
        Assert.Equal(mono, clock.MonotonicNanos);
    }

    [Fact]
    public void VirtualClockReadersNeverSeeTimeGoBackwards()
    {
        var clock = new VirtualClock();
        using var stop = new CancellationTokenSource();
        int backwards = 0;
        var readers = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            long last = clock.MonotonicNanos;
            DateTimeOffset lastUtc = clock.UtcNow;
            while (!stop.IsCancellationRequested)
            {
                long now = clock.MonotonicNanos;
                DateTimeOffset utc = clock.UtcNow;
                if (now < last || utc < lastUtc)
                    Interlocked.Increment(ref backwards);
                last = now;
                lastUtc = utc;
            }
        })).ToArray();
        foreach (Thread r in readers) r.Start();
        for (int i = 0; i < 200_000; i++)
            clock.AdvanceNanos(i % 1000);
        stop.Cancel();
        foreach (Thread r in readers) r.Join();
        Assert.Equal(0, backwards);
    }

    [Fact]
    public void SystemClockIsMonotonicAndItsWallClockIsTheMachines()
    {
        IClock clock = SystemClock.Instance;
        long last = clock.MonotonicNanos;
        for (int i = 0; i < 10_000; i++)
        {
            long now = clock.MonotonicNanos;
            Assert.True(now >= last);
            last = now;
        }
        Assert.True(clock.MonotonicNanos > 0);
        // A sanity bound, not a timing: the two reads are of the same clock.
        Assert.True((clock.UtcNow - DateTimeOffset.UtcNow).Duration() < TimeSpan.FromMinutes(1));
    }

    [Fact]
    public void SystemClockMonotonicAdvancesWithRealTime()
    {
        IClock clock = SystemClock.Instance;
        long start = clock.MonotonicNanos;
        // Wait until it moves at all (no assertion on how fast).
        SpinWait.SpinUntil(() => clock.MonotonicNanos > start, TimeSpan.FromSeconds(10));
        Assert.True(clock.MonotonicNanos > start);
    }

    [Fact]
    public void SystemClockOnLinuxIsBoottime()
    {
        // CLOCK_BOOTTIME counts from boot, as /proc/uptime does; Stopwatch's CLOCK_MONOTONIC would
        // fall behind it by any time spent suspended. A source check with a generous margin, not a
        // timing.
        if (!OperatingSystem.IsLinux())
            Assert.Skip("CLOCK_BOOTTIME is Linux-only");
        Assert.True(SystemClock.Instance.UsesBoottime, "SystemClock fell back to Stopwatch on Linux");
        double uptime = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0],
            System.Globalization.CultureInfo.InvariantCulture);
        double clock = SystemClock.Instance.MonotonicNanos / 1e9;
        Assert.True(Math.Abs(clock - uptime) < 5, $"boottime {clock} s vs uptime {uptime} s");
    }

    [Fact]
    public void SystemClockReadDoesNotAllocate()
    {
        IClock clock = SystemClock.Instance;
        _ = clock.MonotonicNanos;
        long sum = 0;
        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 10_000; i++)
                sum += clock.MonotonicNanos;
        }));
        Assert.NotEqual(0, sum);
    }
}
