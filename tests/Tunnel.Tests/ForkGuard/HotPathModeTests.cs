using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>The pull side of the fork guard: a per-packet generation check between encrypting and transmitting.</summary>
public sealed class HotPathModeTests
{
    [Fact]
    public void Hot_path_without_a_counter_is_refused()
    {
        using var pair = new DevicePair();
        var kernel = new ForkKernel(new byte[32]);
        Assert.Throws<ArgumentException>(() => new ForkGuard(pair.A, kernel, ForkGuardMode.HotPath));
        Assert.Throws<ArgumentException>(() => new ForkGuard(pair.A, kernel, ForkGuardMode.Both));
        Assert.Empty(kernel.Pm.Chain.Blocks);
        Assert.Empty(kernel.Watchers.Watchers);
    }

    [Fact]
    public void Keypairs_record_the_counter_and_matching_packets_flow()
    {
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.Pair.Handshake();
        Assert.Equal(g.Counter.Current, g.PeerB.Keypairs.Current!.CreatedGeneration);
        for (uint i = 0; i < 10; i++)
            g.Send(i);
        g.Pair.Pump();
        Assert.Equal(10, g.Pair.IoB.Delivered.Count);
        Assert.Equal(0, g.A.Fork.StaleKeyDrops);
    }

    [Fact]
    public void A_stale_generation_drops_the_packet_expires_the_keys_and_handshakes_once_reseeded()
    {
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.Pair.Handshake();
        Keypair old = g.PeerB.Keypairs.Current!;
        ulong nonceBefore = old.SendNonce;

        // Cloned: the hypervisor moved the counter before the guest ran; no notification yet.
        g.MoveCounter();
        g.Send(1);

        Assert.Equal(1, g.A.Fork.StaleKeyDrops);
        Assert.DoesNotContain(g.Pair.IoA.Sent, d => d.Type == MessageType.Transport);
        Assert.False(old.CanSend); // expired for sending, still able to receive
        Assert.False(old.IsZeroed);
        Assert.Equal(nonceBefore + 1, old.SendNonce); // the nonce was used to encrypt, never sent
        // Further packets are not encrypted under it at all: staged for the new session.
        g.Send(2);
        Assert.Equal(1, g.A.Fork.StaleKeyDrops);
        Assert.Equal(1, g.PeerB.StagedCount);
        // The handshake waits for the reseed: until then, every clone would make the same one.
        Assert.Empty(g.Pair.IoA.Sent);

        g.Kernel.AddVmForkRandomness(GuardedPair.VmId(2));
        g.TimerTick(); // the host timer thread: the rekey is paced from Tick
        Assert.Equal(MessageType.Initiation, Assert.Single(g.Pair.IoA.Sent).Type);
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);
        Assert.Equal(0, g.Guard.SessionsCleared); // HotPath alone clears nothing
        g.Pair.Pump();
        Keypair fresh = g.PeerB.Keypairs.Current!;
        Assert.Equal(g.Counter.Current, fresh.CreatedGeneration);
        Assert.Equal(2u, DevicePair.ReadIntact(Assert.Single(g.Pair.IoB.Delivered)));
    }

    [Fact]
    public void Without_the_reseed_gate_a_stale_generation_starts_a_handshake_at_once()
    {
        // A host that sets the counter itself (no guard) has no notification to wait for.
        using var pair = new DevicePair();
        var counter = new VmGeneration(3);
        pair.A.Fork.Counter = counter;
        pair.Handshake();
        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        counter.Advance();
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 80));
        Assert.Equal(1, pair.A.Fork.StaleKeyDrops);
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
        pair.Pump();
        Assert.Equal(counter.Current, pair.PeerB.Keypairs.Current!.CreatedGeneration);
    }

    [Fact]
    public void A_packet_encrypted_before_the_fork_and_checked_after_it_is_dropped()
    {
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.Pair.Handshake();
        g.Counter.MoveAtNextRead(); // the snapshot falls between the seal and the check
        g.Send(1);

        Assert.Empty(g.Pair.IoA.Sent); // nor an initiation: the gate holds it until the reseed
        Assert.Equal(1, g.A.Fork.StaleKeyDrops);
    }

    [Fact]
    public void Many_packets_after_a_fork_start_one_handshake()
    {
        using var pair = new DevicePair();
        var counter = new VmGeneration(3);
        pair.A.Fork.Counter = counter;
        pair.Handshake();
        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        counter.Advance();
        for (uint i = 0; i < 5; i++)
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, i, 80));

        Assert.Equal(1, pair.A.Fork.StaleKeyDrops); // the rest wait, staged, for the new session
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
    }

    [Fact]
    public void A_handshake_that_straddles_a_fork_yields_keys_that_may_not_send()
    {
        // Initiation made before the fork, response consumed after it: both clones could hold the
        // session, so the keypair carries the generation the handshake started in.
        using var pair = new DevicePair();
        var counter = new VmGeneration(3);
        pair.A.Fork.Counter = counter;
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 80));
        Datagram initiation = Assert.Single(pair.IoA.TakeSent());
        counter.Advance();
        pair.B.ReceiveDatagram(initiation.Bytes, DevicePair.EndpointA);
        foreach (Datagram d in pair.IoB.TakeSent())
            pair.A.ReceiveDatagram(d.Bytes, DevicePair.EndpointB);

        Assert.Equal(3ul, pair.PeerB.Keypairs.Current!.CreatedGeneration);
        Assert.DoesNotContain(pair.IoA.Sent, d => d.Type == MessageType.Transport);
        Assert.Equal(1, pair.A.Fork.StaleKeyDrops);
    }

    [Fact]
    public void A_clone_does_not_answer_an_initiation_before_its_randomness_is_reseeded()
    {
        using var g = new GuardedPair(ForkGuardMode.HotPath);
        g.Pair.Handshake();
        g.MoveCounter();
        byte[] digest = g.A.StateDigest();
        // B starts a handshake towards A.
        g.Pair.PeerA.ExpireCurrentKeypairs();
        g.Pair.PeerA.InitiateHandshake();
        foreach (Datagram d in g.Pair.IoB.TakeSent())
            g.A.ReceiveDatagram(d.Bytes, DevicePair.EndpointB);
        Assert.Empty(g.Pair.IoA.Sent);
        Assert.Equal(HandshakeStage.InitiationConsumed, g.PeerB.Handshake!.Stage);
        Assert.NotEqual(digest, g.A.StateDigest()); // consumed (timestamp recorded), not answered
    }

    [Fact]
    public void The_send_path_allocates_nothing_with_the_hot_path_check_on()
    {
        using var pair = new RingPair();
        TunnelDevice a = pair.A;
        RingIo ioB = pair.IoB;
        var kernel = new ForkKernel(new byte[32]);
        var counter = new VmGeneration(5);
        using var guard = new ForkGuard(a, kernel, ForkGuardMode.Both, counter);
        byte[] toB = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 1280);

        void Round() => pair.AToB(toB);

        long allocated = RingPair.SteadyStateAllocation(Round);

        Assert.Equal(42_000, ioB.Delivered);
        Assert.Equal(0, a.Fork.StaleKeyDrops);
        Assert.Equal(0, allocated);
    }
}
