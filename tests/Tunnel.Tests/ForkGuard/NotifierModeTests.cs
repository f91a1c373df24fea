using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>The push side of the fork guard: the PM chain clears, zeroes, acknowledges and rekeys.</summary>
public sealed class NotifierModeTests
{
    private static bool IsZero(ReadOnlySpan<byte> bytes) => bytes.IndexOfAnyExcept((byte)0) < 0;

    /// <summary>A, with two keypairs (previous and current), so clearing has more than one to zero.</summary>
    private static (Keypair Previous, Keypair Current) TwoSessions(GuardedPair g)
    {
        g.Pair.Handshake();
        g.Pair.Clock.Advance(TimeSpan.FromSeconds(121)); // REKEY_AFTER_TIME: the next packet rekeys
        g.Send(1);
        g.Pair.Pump();
        Keypair previous = Assert.IsType<Keypair>(g.PeerB.Keypairs.Previous);
        Keypair current = Assert.IsType<Keypair>(g.PeerB.Keypairs.Current);
        Assert.NotSame(previous, current);
        Assert.False(IsZero(current.SendKey));
        Assert.False(IsZero(previous.ReceiveKey));
        g.Pair.IoA.Sent.Clear();
        g.Pair.IoB.Delivered.Clear();
        return (previous, current);
    }

    [Fact]
    public void Off_registers_nothing_and_a_fork_changes_nothing()
    {
        using var g = new GuardedPair(ForkGuardMode.Off);
        Assert.Empty(g.Kernel.Pm.Chain.Blocks);
        Assert.Empty(g.Kernel.Watchers.Watchers);
        Assert.Null(g.A.Fork.Counter);
        (_, Keypair current) = TwoSessions(g);
        byte[] digest = g.A.StateDigest();

        g.Fork();

        Assert.Equal(digest, g.A.StateDigest());
        Assert.Same(current, g.PeerB.Keypairs.Current);
        Assert.Empty(g.Pair.IoA.Sent);
        Assert.Equal(0, g.Guard.SessionsCleared);
        // The danger itself: the clone keeps sending under the old session.
        g.Send(2);
        Assert.Equal(MessageType.Transport, Assert.Single(g.Pair.IoA.Sent).Type);
    }

    [Fact]
    public void Post_vm_fork_zeroes_every_keypair_acknowledges_and_sends_an_initiation_at_once()
    {
        using var g = new GuardedPair(ForkGuardMode.Notifier);
        Assert.Single(g.Kernel.Pm.Chain.Blocks);
        (Keypair previous, Keypair current) = TwoSessions(g);
        ulong before = g.Kernel.Generation.Current;
        // A block called before the guard sees the device's watcher outdated: the fork path moved
        // the generation and the guard has not handled it yet.
        int outdatedBeforeGuard = -1;
        var spy = new NotifierBlock((_, _, _) =>
        {
            outdatedBeforeGuard = g.Kernel.Watchers.OutdatedCount;
            return NotifyResult.Done;
        }, priority: 10);
        g.Kernel.Pm.Register(spy);

        g.Fork();

        Assert.Equal(1, outdatedBeforeGuard);

        // Cleared and zeroed: slots empty, key bytes zero, replay windows reset, indexes freed.
        Assert.Null(g.PeerB.Keypairs.Previous);
        Assert.Null(g.PeerB.Keypairs.Current);
        Assert.Null(g.PeerB.Keypairs.Next);
        foreach (Keypair k in new[] { previous, current })
        {
            Assert.True(k.IsZeroed);
            Assert.True(IsZero(k.SendKey));
            Assert.True(IsZero(k.ReceiveKey));
            Assert.Null(g.A.Indexes.Lookup(k.LocalIndex));
        }
        Assert.Equal(1, g.Guard.SessionsCleared);

        // Acknowledged: the watcher is up to date with the new generation.
        Assert.Equal(before + 1, g.Kernel.Generation.Current);
        Assert.Equal(g.Kernel.Generation.Current, g.Guard.HandledGeneration);
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);
        Assert.True(g.Kernel.Watchers.WaitForAllUpToDate(TimeSpan.Zero));

        // A new handshake left during the notification, with no packet to prompt it.
        Datagram initiation = Assert.Single(g.Pair.IoA.Sent);
        Assert.Equal(MessageType.Initiation, initiation.Type);
        g.Pair.Pump();
        Keypair fresh = Assert.IsType<Keypair>(g.PeerB.Keypairs.Current);
        Assert.NotEqual(current.LocalIndex, fresh.LocalIndex);

        // And traffic flows under it.
        g.Send(3);
        g.Pair.Pump();
        Assert.Equal(3u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));
    }

    [Fact]
    public void A_fork_signalled_twice_respaces_the_second_initiation_so_the_responder_takes_it()
    {
        // vmgenid and the virtio-rng leak both run the fork path: two PostVmFork in one instant.
        // The second clears the handshake the first started; sending its initiation at once would
        // be refused by B (one initiation per peer per 20 ms), and the answer to the first would
        // find nothing: no keys for REKEY_TIMEOUT. It must leave at the respacing instead.
        using var g = new GuardedPair(ForkGuardMode.Notifier);
        TwoSessions(g);
        g.Fork();
        Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
        g.Pair.IoA.Sent.Clear();
        g.Kernel.AddVmForkRandomness(GuardedPair.VmId(200)); // the second signal, same instant
        Assert.Equal(2, g.Guard.SessionsCleared);
        Assert.Empty(g.Pair.IoA.Sent);                       // not into B's flood limit...

        g.Pair.History.Clear();
        g.Pair.Advance(TimeSpan.FromTicks(Constants.InitiationRespacingNanos / 100),
            step: TimeSpan.FromMilliseconds(1));
        // ...but as soon as B takes it, and the session is up well before REKEY_TIMEOUT.
        Assert.Single(g.Pair.History, d => d.Type == MessageType.Initiation);
        Assert.Single(g.Pair.History, d => d.Type == MessageType.Response);
        Assert.NotNull(g.PeerB.Keypairs.Current ?? g.PeerB.Keypairs.Next);
        g.Send(5);
        g.Pair.Pump();
        Assert.Equal(5u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));
    }

    [Fact]
    public void Both_keeps_the_handshake_made_after_its_own_reseed_when_the_fork_is_signalled_again()
    {
        // With a pull counter the guard can tell the second signal of one fork from a new fork:
        // the counter has not moved, and the handshake started after this VM's reseed is its own.
        using var g = new GuardedPair(ForkGuardMode.Both);
        TwoSessions(g);
        g.Fork();
        Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
        g.Kernel.AddVmForkRandomness(GuardedPair.VmId(200)); // the second signal, same instant
        Assert.Equal(2, g.Guard.SessionsCleared);
        Assert.Single(g.Pair.IoA.Sent); // no second initiation: the first is still wanted
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);

        g.Pair.History.Clear();
        g.Pair.Pump(); // B answers the first initiation, which A still has
        Assert.Single(g.Pair.History, d => d.Type == MessageType.Response);
        g.Send(6);
        g.Pair.Pump();
        Assert.Equal(6u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));

        // A real new fork (the counter moves) still clears it.
        Keypair fresh = Assert.IsType<Keypair>(g.PeerB.Keypairs.Current);
        g.Fork();
        Assert.True(fresh.IsZeroed);
    }

    [Theory]
    [InlineData(PmEvent.SuspendPrepare)]
    [InlineData(PmEvent.HibernationPrepare)]
    public void Suspend_and_hibernate_zero_every_keypair_then_wait_for_traffic(PmEvent ev)
    {
        using var g = new GuardedPair(ForkGuardMode.Notifier);
        (Keypair previous, Keypair current) = TwoSessions(g);

        Assert.Equal(NotifyResult.Ok, g.Kernel.Pm.CallChain(ev));

        Assert.True(previous.IsZeroed && IsZero(previous.SendKey) && IsZero(previous.ReceiveKey));
        Assert.True(current.IsZeroed && IsZero(current.SendKey) && IsZero(current.ReceiveKey));
        Assert.Null(g.PeerB.Keypairs.Current);
        Assert.Equal(1, g.Guard.SessionsCleared);
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);
        // As the kernel: no handshake until there is something to send.
        Assert.Empty(g.Pair.IoA.Sent);
        g.Pair.History.Clear();
        g.Pair.Advance(TimeSpan.FromSeconds(30));
        Assert.DoesNotContain(g.Pair.History, d => d.Type == MessageType.Initiation);

        Assert.Empty(g.Pair.IoA.Sent);
        g.Send(4);
        Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
        g.Pair.Pump();
        Assert.Equal(4u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));
    }

    [Theory]
    [InlineData(PmEvent.PostSuspend)]
    [InlineData(PmEvent.PostHibernation)]
    [InlineData(PmEvent.RestorePrepare)]
    [InlineData(PmEvent.PostRestore)]
    public void Other_pm_events_change_nothing(PmEvent ev)
    {
        using var g = new GuardedPair(ForkGuardMode.Both);
        g.Pair.Handshake();
        byte[] digest = g.A.StateDigest();
        Assert.Equal(NotifyResult.Done, g.Kernel.Pm.CallChain(ev));
        Assert.Equal(digest, g.A.StateDigest());
        Assert.Equal(0, g.Guard.SessionsCleared);
    }

    [Fact]
    public void A_peer_without_a_session_gets_no_handshake_after_a_fork()
    {
        using var g = new GuardedPair(ForkGuardMode.Notifier);
        g.Fork();
        Assert.Empty(g.Pair.IoA.Sent);
        Assert.Equal(1, g.Guard.SessionsCleared);
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);
    }

    [Fact]
    public void A_handshake_in_progress_is_cleared_and_restarted_after_a_fork()
    {
        using var g = new GuardedPair(ForkGuardMode.Notifier);
        g.Send(1); // initiation out; B answers, the answer is still in flight at the fork
        Datagram first = Assert.Single(g.Pair.IoA.TakeSent());
        uint firstIndex = MessageHeader.ReadIndex(first.Bytes, MessageInitiation.SenderOffset);
        g.Pair.B.ReceiveDatagram(first.Bytes, DevicePair.EndpointA);
        Datagram response = Assert.Single(g.Pair.IoB.TakeSent());

        g.Fork();

        // Within REKEY_TIMEOUT of the first, yet sent at once, under a new index.
        Datagram second = Assert.Single(g.Pair.IoA.Sent);
        Assert.Equal(MessageType.Initiation, second.Type);
        Assert.NotEqual(firstIndex, MessageHeader.ReadIndex(second.Bytes, MessageInitiation.SenderOffset));
        Assert.Null(g.A.Indexes.Lookup(firstIndex));
        // The answer to the pre-fork initiation is refused: that handshake is gone.
        g.A.ReceiveDatagram(response.Bytes, DevicePair.EndpointB);
        Assert.Null(g.PeerB.Keypairs.Current);
        Assert.Single(g.Pair.IoA.Sent);
        // The post-fork one completes and the staged packet goes out.
        g.Pair.Pump();
        Assert.NotNull(g.PeerB.Keypairs.Current);
        Assert.Equal(1u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));
    }

    [Fact]
    public void Both_clears_and_rekeys_on_the_notification_and_the_hot_path_guards_the_window_before_it()
    {
        using var g = new GuardedPair(ForkGuardMode.Both);
        g.Pair.Handshake();
        Keypair old = g.PeerB.Keypairs.Current!;

        // The hypervisor moved the counter; the notification is still on its way.
        g.MoveCounter();
        g.Send(1);
        Assert.Equal(1, g.A.Fork.StaleKeyDrops);
        // Nothing leaves: not the packet, and not an initiation whose ephemeral key would come from
        // a generator every clone still shares.
        Assert.Empty(g.Pair.IoA.Sent);
        Assert.False(g.A.Fork.TryBeginHandshake(out _));

        // The notification arrives: everything is zeroed, and acknowledged.
        g.Kernel.AddVmForkRandomness(GuardedPair.VmId(99));
        Assert.True(old.IsZeroed && IsZero(old.SendKey));
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);
        Assert.True(g.A.Fork.TryBeginHandshake(out _));
        g.TimerTick(); // the host timer thread: the rekey is paced from Tick
        Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
        g.Pair.Pump();
        g.Send(2);
        g.Pair.Pump();
        Assert.Equal(2u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));
        Assert.Equal(g.Counter.Current, g.PeerB.Keypairs.Current!.CreatedGeneration);
    }

    [Fact]
    public void Dispose_unregisters_the_block_and_the_watcher()
    {
        var g = new GuardedPair(ForkGuardMode.Both);
        Assert.Single(g.Kernel.Pm.Chain.Blocks);
        Assert.Single(g.Kernel.Watchers.Watchers);
        g.Guard.Dispose();
        Assert.Empty(g.Kernel.Pm.Chain.Blocks);
        Assert.Empty(g.Kernel.Watchers.Watchers);
        Assert.Null(g.A.Fork.Counter);
        g.Pair.Dispose();
    }
}
