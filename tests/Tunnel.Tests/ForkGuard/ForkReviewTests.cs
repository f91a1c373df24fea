using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>Issue 14's review points 2, 3 and 5, each shown fixed, with its negative control.</summary>
public sealed class ForkReviewTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_snapshot_between_the_gate_and_the_recorded_generation_sends_no_initiation(bool twoReads)
    {
        // Point 2: the gate check and the generation the handshake records are one read. The
        // snapshot lands right after the gate's read: the next read of the counter is the clone's.
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.A.Fork.TwoReadsForTest = twoReads;
        g.Pair.Clock.Advance(TimeSpan.FromSeconds(1));
        // The first read (the gate) sees the old value, the second the clone's.
        g.A.Fork.Counter = new SecondReadMoves(g.Counter);

        g.Send(1);

        if (twoReads)
        {
            // The negative control finds the fault: an initiation made from the snapshot's
            // randomness left the clone, tagged with the clone's generation.
            Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
        }
        else
        {
            Assert.Empty(g.Pair.IoA.Sent);
        }
    }

    /// <summary>Passes the first read through, then moves the counter at the second (the snapshot).</summary>
    private sealed class SecondReadMoves(TrippingCounter inner) : IGenerationCounter
    {
        private int _reads;

        public ulong Read()
        {
            if (++_reads == 2)
                inner.Advance();
            return inner.Current;
        }
    }

    [Theory]
    [InlineData(PmEvent.SuspendPrepare)]
    [InlineData(PmEvent.HibernationPrepare)]
    public void Hot_path_alone_zeroes_every_keypair_on_suspend_and_hibernate(PmEvent ev)
    {
        // Point 3: a hibernation image resumed twice moves no VM counter; only clearing helps.
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.Pair.Handshake();
        Keypair current = g.PeerB.Keypairs.Current!;

        g.Kernel.Pm.CallChainRobust(ev, ev == PmEvent.SuspendPrepare ? PmEvent.PostSuspend : PmEvent.PostHibernation);

        Assert.True(current.IsZeroed);
        Assert.Null(g.PeerB.Keypairs.Current);
        Assert.Equal(1, g.Guard.SessionsCleared);
    }

    [Theory]
    [InlineData(ForkGuardMode.Notifier, false)]
    [InlineData(ForkGuardMode.Notifier, true)]
    [InlineData(ForkGuardMode.Both, false)]
    [InlineData(ForkGuardMode.Both, true)]
    public void A_hostile_block_ahead_of_the_guard_cannot_veto_the_fork(ForkGuardMode mode, bool throws)
    {
        // Point 5: a higher-priority block that returns Bad (or throws) stops an ordinary walk.
        using var g = new GuardedPair(mode);
        g.Kernel.Pm.Register(new NotifierBlock((_, _, _) =>
            throws ? throw new InvalidOperationException("hostile") : NotifyResult.Bad, priority: 1000));
        g.Pair.Handshake();
        Keypair current = g.PeerB.Keypairs.Current!;

        g.Fork();

        Assert.True(current.IsZeroed);
        Assert.Equal(1, g.Guard.SessionsCleared);
        Assert.Equal(g.Kernel.Generation.Current, g.Guard.HandledGeneration);
    }

    [Fact]
    public void The_gate_opens_for_the_generation_read_before_the_reseed_not_after()
    {
        // Point 2: the snapshot lands between the fork path's read of the counter and its reseed
        // (here: while the clone-unique input is read). The clone's counter has moved; a gate keyed
        // to a re-read would open on the copied state.
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.Pair.Clock.Advance(TimeSpan.FromSeconds(1));
        g.Kernel.CloneInput = new MovesCounterWhenRead(g.Counter);
        g.Counter.Advance();

        g.Kernel.AddVmForkRandomness(GuardedPair.VmId(9), idIsCloneUnique: false);

        Assert.False(g.A.Fork.TryBeginHandshake(out ulong now));
        Assert.Equal(g.Counter.Current - 1, g.A.Fork.ReseededGeneration);
        Assert.Equal(g.Counter.Current, now);
    }

    private sealed class MovesCounterWhenRead(TrippingCounter counter) : ICloneUniqueInput
    {
        public string Name => "test";

        public bool TryRead(Span<byte> digest)
        {
            counter.Advance();
            digest.Fill(0x5a);
            return true;
        }
    }

    [Fact]
    public void A_handshake_held_by_the_gate_has_a_timeout()
    {
        // Point 2: a handshake deferred for a reseed that never comes is retried by the timers and
        // given up after REKEY_ATTEMPT_TIME, as an unanswered initiation is.
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.MoveCounter();
        g.Send(1);
        Assert.Empty(g.Pair.IoA.Sent);
        Assert.NotEqual(long.MaxValue, g.A.NextDeadlineNanos);
        for (int i = 0; i < 40 && g.PeerB.StagedCount > 0; i++)
        {
            g.Pair.Clock.Advance(TimeSpan.FromSeconds(5));
            g.A.Tick();
        }
        Assert.Equal(0, g.PeerB.StagedCount);
        Assert.Empty(g.Pair.IoA.Sent);
    }

    [Fact]
    public void Without_a_clone_unique_input_the_guard_holds_handshakes_even_without_a_counter()
    {
        // Point 1 in Notifier mode: no pull counter to gate on, so the guard holds them itself.
        using var g = new GuardedPair(ForkGuardMode.Notifier);
        g.Pair.Handshake();
        g.Pair.Clock.Advance(TimeSpan.FromSeconds(1));

        g.Kernel.AddVmForkRandomness(GuardedPair.VmId(9), idIsCloneUnique: false);

        Assert.True(g.Guard.HoldingHandshakes);
        Assert.Empty(g.Pair.IoA.Sent);
        g.Kernel.AddCloneUniqueRandomness([1, 2, 3], "kmsg");
        Assert.False(g.Guard.HoldingHandshakes);
        g.TimerTick(); // the host timer thread: the rekey is paced from Tick
        Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
    }

    [Fact]
    public void The_unique_input_rule_switched_off_opens_the_gate_on_shared_input()
    {
        // The negative control of point 1: the guard opens without a clone-unique input.
        var kernel = new ForkKernel(new byte[32], entropy: new SeededRandom(1));
        using var pair = new DevicePair(randomA: kernel.Random);
        using var guard = new ForkGuard(pair.A, kernel, ForkGuardMode.Notifier) { RequireCloneUniqueInput = false };
        pair.Handshake();
        pair.Clock.Advance(TimeSpan.FromSeconds(1));

        kernel.AddVmForkRandomness(GuardedPair.VmId(9), idIsCloneUnique: false);

        Assert.False(guard.HoldingHandshakes);
        pair.A.Tick(); // the host timer thread: the rekey is paced from Tick
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
    }
}
