using FsCheck;
using FsCheck.Fluent;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public sealed class ReplayFilterTests
{
    /// <summary>Both filters hold the exact same state (so answer every future counter alike).</summary>
    private static bool SameState(ReplayFilter a, ReplayFilter b) => StateOf(a).SequenceEqual(StateOf(b));

    private static byte[] StateOf(ReplayFilter filter)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
            filter.WriteState(writer);
        return stream.ToArray();
    }

    private const ulong Window = Constants.CounterWindowSize;
    private const ulong Reject = Constants.RejectAfterMessages;

    /// <summary>
    /// The kernel's selftest/counter.c sequence, step for step: each pair is (counter, expected).
    /// T_LIM is COUNTER_WINDOW_SIZE + 1 there.
    /// </summary>
    [Fact]
    public void KernelSelftestSequence()
    {
        const ulong lim = Window + 1;
        var steps = new (ulong Counter, bool Expected)[]
        {
            /*  1 */ (0, true),
            /*  2 */ (1, true),
            /*  3 */ (1, false),
            /*  4 */ (9, true),
            /*  5 */ (8, true),
            /*  6 */ (7, true),
            /*  7 */ (7, false),
            /*  8 */ (lim, true),
            /*  9 */ (lim - 1, true),
            /* 10 */ (lim - 1, false),
            /* 11 */ (lim - 2, true),
            /* 12 */ (2, true),
            /* 13 */ (2, false),
            /* 14 */ (lim + 16, true),
            /* 15 */ (3, false),
            /* 16 */ (lim + 16, false),
            /* 17 */ (lim * 4, true),
            /* 18 */ (lim * 4 - (lim - 1), true),
            /* 19 */ (10, false),
            /* 20 */ (lim * 4 - lim, false),
            /* 21 */ (lim * 4 - (lim + 1), false),
            /* 22 */ (lim * 4 - (lim - 2), true),
            /* 23 */ (lim * 4 + 1 - lim, false),
            /* 24 */ (0, false),
            /* 25 */ (Reject, false),
            /* 26 */ (Reject - 1, true),
            /* 27 */ (Reject, false),
            /* 28 */ (Reject - 1, false),
            /* 29 */ (Reject - 2, true),
            /* 30 */ (Reject + 1, false),
            /* 31 */ (Reject + 2, false),
            /* 32 */ (Reject - 2, false),
            /* 33 */ (Reject - 3, true),
            /* 34 */ (0, false),
        };

        var filter = new ReplayFilter();
        for (int i = 0; i < steps.Length; i++)
        {
            bool actual = filter.ValidateCounter(steps[i].Counter, Reject);
            Assert.True(actual == steps[i].Expected,
                $"step {i + 1}: counter {steps[i].Counter} gave {actual}, expected {steps[i].Expected}");
        }
    }

    [Fact]
    public void KernelSelftestFullWindowAscendingThenZero()
    {
        var filter = new ReplayFilter();
        for (ulong i = 1; i <= Window; i++)
            Assert.True(filter.ValidateCounter(i, Reject), $"counter {i}");
        Assert.True(filter.ValidateCounter(0, Reject));
        Assert.False(filter.ValidateCounter(0, Reject));
    }

    [Fact]
    public void KernelSelftestWindowPlusOneAscendingThenOneAndZero()
    {
        var filter = new ReplayFilter();
        for (ulong i = 2; i <= Window + 1; i++)
            Assert.True(filter.ValidateCounter(i, Reject), $"counter {i}");
        Assert.True(filter.ValidateCounter(1, Reject));
        Assert.False(filter.ValidateCounter(0, Reject));
    }

    [Fact]
    public void KernelSelftestDescendingFromWindow()
    {
        var filter = new ReplayFilter();
        for (ulong i = Window + 1; i-- > 0;)
            Assert.True(filter.ValidateCounter(i, Reject), $"counter {i}");
    }

    [Fact]
    public void KernelSelftestDescendingFromWindowPlusOneThenZero()
    {
        var filter = new ReplayFilter();
        for (ulong i = Window + 2; i-- > 1;)
            Assert.True(filter.ValidateCounter(i, Reject), $"counter {i}");
        Assert.False(filter.ValidateCounter(0, Reject));
    }

    [Fact]
    public void KernelSelftestDescendingThenFrontThenZero()
    {
        var filter = new ReplayFilter();
        for (ulong i = Window + 1; i-- > 1;)
            Assert.True(filter.ValidateCounter(i, Reject), $"counter {i}");
        Assert.True(filter.ValidateCounter(Window + 1, Reject));
        Assert.False(filter.ValidateCounter(0, Reject));
    }

    [Fact]
    public void KernelSelftestDescendingThenZeroThenFront()
    {
        var filter = new ReplayFilter();
        for (ulong i = Window + 1; i-- > 1;)
            Assert.True(filter.ValidateCounter(i, Reject), $"counter {i}");
        Assert.True(filter.ValidateCounter(0, Reject));
        Assert.True(filter.ValidateCounter(Window + 1, Reject));
    }

    [Fact]
    public void WindowIsExactly8128()
    {
        Assert.Equal(8128UL, Window);
        var filter = new ReplayFilter();
        Assert.True(filter.ValidateCounter(10_000, Reject));
        Assert.False(filter.ValidateCounter(10_000 - Window - 1, Reject)); // one too old
        Assert.True(filter.ValidateCounter(10_000 - Window, Reject));      // oldest still inside
    }

    [Fact]
    public void LimitParameterIsHonoured()
    {
        var filter = new ReplayFilter();
        Assert.False(filter.ValidateCounter(100, 100));
        Assert.True(filter.ValidateCounter(99, 100));
        Assert.False(filter.ValidateCounter(ulong.MaxValue, ulong.MaxValue));
        Assert.True(filter.ValidateCounter(ulong.MaxValue - 1, ulong.MaxValue));
        Assert.False(filter.ValidateCounter(ulong.MaxValue - 1, ulong.MaxValue));
    }

    [Fact]
    public void RejectedCounterLeavesStateUnchanged()
    {
        var filter = new ReplayFilter();
        foreach (ulong c in new ulong[] { 5, 70, 9000, 9001, 8999 })
            filter.ValidateCounter(c, Reject);
        ReplayFilter before = filter.Clone();

        Assert.False(filter.ValidateCounter(9000, Reject));    // duplicate
        Assert.False(filter.ValidateCounter(5, Reject));       // too old
        Assert.False(filter.ValidateCounter(Reject, Reject));  // over the limit
        Assert.False(filter.ValidateCounter(20_000, 20_000));  // over a caller's limit

        Assert.True(SameState(filter, before));
    }

    [Fact]
    public void ResetAcceptsEverythingAgain()
    {
        var fresh = new ReplayFilter();
        var filter = new ReplayFilter();
        for (ulong c = 0; c < 20_000; c += 7)
            filter.ValidateCounter(c, Reject);
        Assert.False(SameState(filter, fresh));

        filter.Reset();

        Assert.True(SameState(filter, fresh));
        Assert.True(filter.ValidateCounter(0, Reject));
        Assert.True(filter.ValidateCounter(7, Reject));
    }

    [Fact]
    public void SnapshotCopyAnswersLikeTheOriginal()
    {
        // A VM snapshot copies the filter: from then on the copy and the original must agree on
        // every counter, and neither must affect the other.
        var rng = new Random(1234);
        var original = new ReplayFilter();
        for (int i = 0; i < 5000; i++)
            original.ValidateCounter((ulong)rng.Next(0, 30_000), Reject);

        var copy = new ReplayFilter();
        copy.ValidateCounter(123_456, Reject); // state that CopyTo must overwrite
        original.CopyTo(copy);
        Assert.True(SameState(copy, original));

        for (int i = 0; i < 5000; i++)
        {
            ulong c = (ulong)rng.Next(0, 40_000);
            Assert.Equal(original.ValidateCounter(c, Reject), copy.ValidateCounter(c, Reject));
        }

        // Independence: advancing one leaves the other behind.
        Assert.True(copy.ValidateCounter(1_000_000, Reject));
        Assert.False(SameState(copy, original));
        Assert.True(original.ValidateCounter(1_000_000, Reject));
    }

    [Fact]
    public void ValidateDoesNotAllocate()
    {
        var filter = new ReplayFilter();
        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (ulong c = 1; c < 100_000; c++)
                filter.ValidateCounter(c * 3 % 50_000, Reject);
        }));
    }

    [Fact]
    public void ConcurrentValidationAcceptsEachCounterExactlyOnce()
    {
        // Several receive threads race over the same counters (every counter is offered by every
        // thread): each counter must be accepted by exactly one of them.
        const int threads = 4;
        const int counters = 200_000;
        var filter = new ReplayFilter();
        var accepted = new int[counters];
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            // Offer counters in ascending order with small per-thread perturbation, so that they
            // stay inside the window while the threads interleave.
            for (int c = 0; c < counters; c++)
            {
                int counter = (c & ~7) | ((c + t) & 7);
                if (filter.ValidateCounter((ulong)counter, Reject))
                    Interlocked.Increment(ref accepted[counter]);
            }
        })).ToArray();
        foreach (Thread w in workers) w.Start();
        foreach (Thread w in workers) w.Join();

        // Whichever thread offers a counter first is at the front of the others (they all offer the
        // same blocks of 8 in the same order), so it is inside the window then: every counter is
        // accepted, and the lock must make sure it is accepted only once.
        for (int c = 0; c < counters; c++)
            Assert.True(accepted[c] == 1, $"counter {c} accepted {accepted[c]} times");
    }

    // ---- Property test against a naive model ----

    /// <summary>
    /// The specification in its plainest form: a counter is accepted if it is under the limit, was
    /// never accepted, and is no more than the window behind the greatest accepted counter.
    /// </summary>
    private sealed class NaiveReplayModel
    {
        private readonly HashSet<ulong> _seen = [];
        private ulong? _greatest;

        public bool Validate(ulong counter, ulong limit)
        {
            if (counter >= limit || _seen.Contains(counter))
                return false;
            if (_greatest is ulong g && g > counter && g - counter > Window)
                return false;
            _seen.Add(counter);
            if (_greatest is null || counter > _greatest)
                _greatest = counter;
            return true;
        }
    }

    private enum StepKind { Move, Boundary, Top }

    private static Gen<ulong[]> CounterSequences()
    {
        // Counters that cluster around a moving front, with jumps of about one or more ring laps
        // (8192), probes at the window's edge (greatest - 8128 +/- 3) and visits near the top of
        // the counter space.
        Gen<(StepKind Kind, long Value)> step = Gen.Frequency(
            (10, Gen.Choose(-70, 70).Select(x => (StepKind.Move, (long)x))),
            (4, Gen.Choose(-8300, 8300).Select(x => (StepKind.Move, (long)x))),
            (2, Gen.Choose(8100, 8300).Select(x => (StepKind.Move, (long)x))),
            (1, Gen.Choose(1, 40).Select(x => (StepKind.Move, x * 8192L + 3))),
            (4, Gen.Choose(-3, 3).Select(x => (StepKind.Boundary, (long)x))),
            (1, Gen.Choose(0, 200).Select(x => (StepKind.Top, (long)x))));
        return Gen.Choose(0, 3000).SelectMany(start =>
            Gen.ListOf(step).Select(steps =>
            {
                var result = new ulong[steps.Count];
                ulong front = (ulong)start;
                ulong greatest = front;
                for (int i = 0; i < steps.Count; i++)
                {
                    (StepKind kind, long value) = steps[i];
                    ulong counter = kind switch
                    {
                        StepKind.Top => Reject - (ulong)value,
                        StepKind.Boundary => unchecked(greatest - Window + (ulong)value),
                        _ when value < 0 && (ulong)(-value) > front => 0,
                        _ => unchecked(front + (ulong)value),
                    };
                    if (kind != StepKind.Boundary)
                        front = counter;
                    greatest = Math.Max(greatest, counter < Reject ? counter : greatest);
                    result[i] = counter;
                }
                return result;
            }));
    }

    [Fact]
    public void MatchesNaiveModel()
    {
        Prop.ForAll(CounterSequences().ToArbitrary(), counters =>
        {
            var filter = new ReplayFilter();
            var model = new NaiveReplayModel();
            foreach (ulong c in counters)
            {
                if (filter.ValidateCounter(c, Reject) != model.Validate(c, Reject))
                    return false;
            }
            return true;
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void MatchesNaiveModelWithSmallLimit()
    {
        const ulong limit = 20_000;
        Prop.ForAll(CounterSequences().ToArbitrary(), counters =>
        {
            var filter = new ReplayFilter();
            var model = new NaiveReplayModel();
            foreach (ulong c in counters)
            {
                ulong counter = c % (limit + 500); // some land at or above the limit
                if (filter.ValidateCounter(counter, limit) != model.Validate(counter, limit))
                    return false;
            }
            return true;
        }).QuickCheckThrowOnFailure();
    }
}
