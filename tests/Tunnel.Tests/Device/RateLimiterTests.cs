using System.Buffers.Binary;
using System.Net;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public sealed class RateLimiterTests
{
    private const int Pps = RateLimiter.DefaultPacketsPerSecond;
    private const int Burst = RateLimiter.DefaultPacketsBurstable;
    private const long Cost = Constants.NanosPerSecond / Pps;

    private static byte[] V4(uint address)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, address);
        return bytes;
    }

    [Fact]
    public void DefaultsAreTheKernels()
    {
        Assert.Equal(20, Pps);
        Assert.Equal(5, Burst);
        Assert.Equal(8192 * 8, RateLimiter.DefaultMaxEntries);
    }

    /// <summary>
    /// The kernel's selftest/ratelimiter.c timings_test, in virtual time (so without its retries):
    /// before each step the clock moves by the step's sleep; the source under test must get the
    /// expected answer, a fresh IPv4 source and a different IPv6 /64 must always pass, and an IPv6
    /// address that differs only in its low 64 bits must share the /64's bucket.
    /// </summary>
    [Fact]
    public void KernelSelftestTimings()
    {
        var expected = new (bool Result, long SleepBefore)[]
        {
            (true, 0), (true, 0), (true, 0), (true, 0), (true, 0), // the burst
            (false, 0),
            (true, Cost),
            (false, 0),
            (true, Cost * 2),
            (true, 0),
            (false, 0),
        };
        var clock = new VirtualClock();
        var limiter = new RateLimiter(clock);

        uint v4 = 8182;
        var v6 = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(v6, 1212);
        BinaryPrimitives.WriteUInt32BigEndian(v6.AsSpan(4), 289188);

        for (int i = 0; i < expected.Length; i++)
        {
            clock.AdvanceNanos(expected[i].SleepBefore);

            Assert.True(expected[i].Result == limiter.Allow(V4(v4)), $"v4 step {i}");
            Assert.True(limiter.Allow(V4(v4 + (uint)i + 1)), $"v4 other source, step {i}");

            BinaryPrimitives.WriteUInt32BigEndian(v6.AsSpan(8), (uint)i);
            BinaryPrimitives.WriteUInt32BigEndian(v6.AsSpan(12), (uint)i);
            Assert.True(expected[i].Result == limiter.Allow(v6), $"v6 step {i}");

            BinaryPrimitives.WriteUInt32BigEndian(v6, 1212 + (uint)i + 1);
            Assert.True(limiter.Allow(v6), $"v6 other /64, step {i}");
            BinaryPrimitives.WriteUInt32BigEndian(v6, 1212);
        }
    }

    /// <summary>The kernel's capacity_test: exactly max entries are tracked, the next new source is refused.</summary>
    [Fact]
    public void KernelSelftestCapacity()
    {
        var limiter = new RateLimiter(new VirtualClock());
        limiter.Clear();
        Assert.Equal(0, limiter.Count);
        for (uint i = 0; i <= RateLimiter.DefaultMaxEntries; i++)
            Assert.True(limiter.Allow(V4(i)) == (i != RateLimiter.DefaultMaxEntries), $"source {i}");
        Assert.Equal(RateLimiter.DefaultMaxEntries, limiter.Count);
    }

    [Fact]
    public void BucketRefillsAtTheRateAndCapsAtTheBurst()
    {
        var clock = new VirtualClock();
        var limiter = new RateLimiter(clock);
        byte[] source = V4(0x0a000001);
        for (int i = 0; i < Burst; i++)
            Assert.True(limiter.Allow(source));
        Assert.False(limiter.Allow(source));

        clock.AdvanceNanos(Cost - 1);
        Assert.False(limiter.Allow(source)); // not quite one packet's worth yet
        clock.AdvanceNanos(1);
        Assert.True(limiter.Allow(source));

        // A long silence refills at most the burst.
        clock.Advance(TimeSpan.FromMinutes(10));
        int allowed = 0;
        for (int i = 0; i < 100; i++)
            if (limiter.Allow(source)) allowed++;
        Assert.Equal(Burst, allowed);

        // Steady state: exactly the rate per second.
        allowed = 0;
        for (int ms = 0; ms < 10_000; ms++)
        {
            clock.AdvanceNanos(Constants.NanosPerMillisecond);
            if (limiter.Allow(source)) allowed++;
        }
        Assert.Equal(10 * Pps, allowed);
    }

    [Fact]
    public void ConfigurableRate()
    {
        var clock = new VirtualClock();
        var limiter = new RateLimiter(clock, packetsPerSecond: Constants.InitiationsPerSecond, packetsBurstable: 1);
        byte[] source = V4(1);
        Assert.True(limiter.Allow(source));
        Assert.False(limiter.Allow(source));
        clock.AdvanceNanos(Constants.InitiationMinIntervalNanos);
        Assert.True(limiter.Allow(source));
        Assert.False(limiter.Allow(source));
    }

    [Fact]
    public void IPv6IsKeyedByItsSlash64()
    {
        var limiter = new RateLimiter(new VirtualClock());
        var addresses = Enumerable.Range(0, 10)
            .Select(i => IPAddress.Parse($"2001:db8:1:2:{i:x}::{i + 1:x}")).ToArray();
        int allowed = addresses.Count(limiter.Allow);
        Assert.Equal(Burst, allowed);
        Assert.True(limiter.Allow(IPAddress.Parse("2001:db8:1:3::1")));
        Assert.Equal(2, limiter.Count);
    }

    [Fact]
    public void IPv4MappedAddressesCountAsIPv4()
    {
        var limiter = new RateLimiter(new VirtualClock());
        for (int i = 0; i < Burst; i++)
            Assert.True(limiter.Allow(IPAddress.Parse("10.1.2.3").MapToIPv6()));
        Assert.False(limiter.Allow(IPAddress.Parse("10.1.2.3")));
        // Other IPv4 senders arriving mapped do not share a bucket (they would if keyed by /64).
        Assert.True(limiter.Allow(IPAddress.Parse("10.1.2.4").MapToIPv6()));
    }

    [Fact]
    public void OtherAddressLengthsAreRefused()
    {
        var limiter = new RateLimiter(new VirtualClock());
        Assert.False(limiter.Allow(ReadOnlySpan<byte>.Empty));
        Assert.False(limiter.Allow(new byte[5]));
        Assert.False(limiter.Allow(new byte[15]));
        Assert.Equal(0, limiter.Count);
    }

    [Fact]
    public void GarbageCollectionDropsOnlyIdleEntries()
    {
        var clock = new VirtualClock();
        var limiter = new RateLimiter(clock);
        limiter.Allow(V4(1));
        limiter.Allow(IPAddress.Parse("fd00::1"));
        clock.AdvanceNanos(Constants.NanosPerSecond / 2);
        limiter.Allow(V4(2));

        clock.AdvanceNanos(Constants.NanosPerSecond / 2);
        limiter.CollectGarbage();
        Assert.Equal(3, limiter.Count); // idle exactly 1 s: kept (the kernel drops only "> 1 s")

        clock.AdvanceNanos(1);
        limiter.CollectGarbage();
        Assert.Equal(1, limiter.Count);

        clock.Advance(TimeSpan.FromSeconds(2));
        limiter.CollectGarbage();
        Assert.Equal(0, limiter.Count);
    }

    [Fact]
    public void CollectingAnIdleEntryChangesNoAnswer()
    {
        // An entry is dropped only once it is idle long enough to have refilled: kept (idle exactly
        // the limit) or dropped (idle longer), the source gets the same full burst.
        foreach (long idle in new[] { Constants.NanosPerSecond, Constants.NanosPerSecond + 1 })
        {
            var clock = new VirtualClock();
            var limiter = new RateLimiter(clock);
            byte[] source = V4(77);
            for (int i = 0; i < Burst + 2; i++)
                limiter.Allow(source); // bucket empty
            clock.AdvanceNanos(idle);
            limiter.CollectGarbage();
            Assert.Equal(idle > Constants.NanosPerSecond ? 0 : 1, limiter.Count);

            var answers = Enumerable.Range(0, Burst + 1).Select(_ => limiter.Allow(source)).ToArray();
            Assert.Equal(Enumerable.Repeat(true, Burst).Append(false), answers);
        }
    }

    [Fact]
    public void AllowCollectsGarbageByItselfEverySecond()
    {
        var clock = new VirtualClock();
        var limiter = new RateLimiter(clock, maxEntries: 100);
        for (uint i = 0; i < 100; i++)
            Assert.True(limiter.Allow(V4(i)));
        Assert.False(limiter.Allow(V4(1000))); // full

        clock.Advance(TimeSpan.FromSeconds(1.5));
        Assert.True(limiter.Allow(V4(1000))); // the sweep made room
        Assert.Equal(1, limiter.Count);
    }

    [Fact]
    public void AllowForAKnownSourceDoesNotAllocate()
    {
        var clock = new VirtualClock();
        var limiter = new RateLimiter(clock);
        byte[] v4 = V4(5);
        byte[] v6 = IPAddress.Parse("fd00::5").GetAddressBytes();
        limiter.Allow(v4);
        limiter.Allow(v6);

        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 100_000; i++)
            {
                clock.AdvanceNanos(Constants.NanosPerMillisecond);
                limiter.Allow(v4);
                limiter.Allow(v6);
            }
        }));
    }

    [Fact]
    public void ConcurrentCallersShareEachBucketExactly()
    {
        // Frozen time: each source has exactly its burst to give, however many threads ask.
        const int threads = 4;
        const int sources = 500;
        var limiter = new RateLimiter(new VirtualClock());
        var allowed = new int[sources];
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (int round = 0; round < 10; round++)
            {
                for (int s = 0; s < sources; s++)
                {
                    int source = (s + t * 37) % sources;
                    if (limiter.Allow(V4((uint)source)))
                        Interlocked.Increment(ref allowed[source]);
                }
            }
        })).ToArray();
        foreach (Thread w in workers) w.Start();
        foreach (Thread w in workers) w.Join();

        Assert.All(allowed, n => Assert.Equal(Burst, n));
    }
}
