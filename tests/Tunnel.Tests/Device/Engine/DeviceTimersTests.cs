using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>Every whitepaper timer, in virtual time.</summary>
public sealed class DeviceTimersTests
{
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    [Fact]
    public void Initiator_rekeys_after_REKEY_AFTER_TIME_and_traffic_continues()
    {
        using var pair = new DevicePair(seed: 21);
        pair.Handshake();
        Keypair first = pair.PeerB.Keypairs.Current!;
        int rounds = 0;
        int initiationsFromB = 0;
        for (; rounds < 130; rounds++)
        {
            pair.Clock.Advance(Second);
            pair.A.Tick();
            pair.B.Tick();
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, (uint)rounds, 100));
            pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, (uint)rounds, 100));
            initiationsFromB += pair.IoB.Sent.Count(d => d.Type == MessageType.Initiation);
            pair.Pump();
        }

        Keypair second = pair.PeerB.Keypairs.Current!;
        Assert.NotSame(first, second);
        Assert.True(second.CreatedNanos - first.CreatedNanos >= Constants.RekeyAfterTimeNanos);
        Assert.True(second.CreatedNanos - first.CreatedNanos < Constants.RekeyAfterTimeNanos + 2 * Constants.NanosPerSecond);
        Assert.Equal(second.LocalIndex, pair.PeerA.Keypairs.Current!.RemoteIndex);
        Assert.Equal(0, initiationsFromB); // only the initiator rekeys on time
        Assert.Equal(rounds, pair.IoB.Delivered.Count);
        Assert.Equal(rounds, pair.IoA.Delivered.Count);
    }

    [Fact]
    public void After_REJECT_AFTER_TIME_sending_is_refused_and_a_handshake_starts()
    {
        // B is the responder: it never rekeys on time, so its session simply runs out.
        using var pair = new DevicePair(seed: 22);
        pair.Handshake();
        Keypair first = pair.PeerA.Keypairs.Current!;
        pair.Advance(TimeSpan.FromSeconds(179), Second);
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 1, 100));
        Datagram late = Assert.Single(pair.IoB.TakeSent()); // still valid at 179 s; lost on the way
        Assert.Equal(MessageType.Transport, late.Type);

        pair.Advance(TimeSpan.FromSeconds(2), Second, pump: false);
        Assert.Same(first, pair.PeerA.Keypairs.Current);
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 100));
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoB.Sent).Type);
        Assert.Equal(1, pair.PeerA.StagedCount);

        // Past REJECT_AFTER_TIME the receiver refuses the old keypair too.
        byte[] digest = pair.A.StateDigest();
        pair.A.ReceiveDatagram(late.Bytes, DevicePair.EndpointB);
        Assert.Empty(pair.IoA.Delivered);
        Assert.Equal(digest, pair.A.StateDigest());

        pair.Pump();
        Assert.NotSame(first, pair.PeerA.Keypairs.Current);
        Assert.True(pair.PeerA.Keypairs.Current!.IsInitiator);
        Assert.Equal(2u, DevicePair.ReadIntact(Assert.Single(pair.IoA.Delivered)));
    }

    [Fact]
    public void Key_material_is_zeroed_after_three_times_REJECT_AFTER_TIME()
    {
        using var pair = new DevicePair(seed: 23);
        pair.Handshake();
        Keypair a = pair.PeerB.Keypairs.Current!;
        Keypair b = pair.PeerA.Keypairs.Current!;
        pair.Advance(TimeSpan.FromSeconds(538), Second);
        Assert.False(a.IsZeroed);
        Assert.Same(a, pair.PeerB.Keypairs.Current);

        pair.Advance(TimeSpan.FromSeconds(3), Second);
        Assert.True(a.IsZeroed);
        Assert.True(b.IsZeroed);
        Assert.True(a.SendKey.IndexOfAnyExcept((byte)0) < 0 && a.ReceiveKey.IndexOfAnyExcept((byte)0) < 0);
        Assert.Null(pair.PeerB.Keypairs.Current);
        Assert.Null(pair.PeerB.Keypairs.Previous);
        Assert.Null(pair.PeerA.Keypairs.Current);
        Assert.Equal(HandshakeStage.Zeroed, pair.PeerB.Handshake!.Stage);
        Assert.Equal(0, pair.A.Indexes.Count);
        Assert.Equal(0, pair.B.Indexes.Count);
    }

    [Fact]
    public void Unanswered_initiation_is_retried_every_REKEY_TIMEOUT_plus_jitter_then_given_up()
    {
        List<long> first = RunUnanswered(seed: 24, out int staged);
        Assert.Equal(0, staged);
        // One initiation, then retries while attempts <= MAX_TIMER_HANDSHAKES (kernel order): 20.
        Assert.Equal(Constants.MaxTimerHandshakes + 2, first.Count);
        for (int i = 1; i < first.Count; i++)
        {
            long gap = first[i] - first[i - 1];
            Assert.InRange(gap, Constants.RekeyTimeoutNanos, Constants.RekeyTimeoutNanos + Constants.RekeyTimeoutJitterMaxNanos + 10 * Constants.NanosPerMillisecond);
        }
        Assert.True(first[^1] - first[0] >= Constants.RekeyAttemptTimeNanos);
        Assert.True(first.Zip(first.Skip(1), (x, y) => y - x).Distinct().Count() > 1, "jitter varies the gaps");

        // Same seed, same jitter: reproducible.
        Assert.Equal(first, RunUnanswered(seed: 24, out _));
    }

    [Fact]
    public void Giving_up_the_handshake_deletes_the_passive_keepalive_too()
    {
        using var pair = new DevicePair(seed: 30);
        pair.Handshake();
        pair.PeerB.ExpireCurrentKeypairs(); // A must handshake again; B keeps sending under the old session
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        long lastInitiation = 0;
        for (int ms = 0; ms < 150_000; ms += 100)
        {
            if (pair.IoA.TakeSent().Any(d => d.Type == MessageType.Initiation)) // all lost
            {
                // Data from B after each retry arms A's passive keepalive, so it is armed when A gives up.
                lastInitiation = pair.Clock.MonotonicNanos;
                pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 100));
                foreach (Datagram d in pair.IoB.TakeSent())
                    pair.A.ReceiveDatagram(d.Bytes, DevicePair.EndpointB);
            }
            pair.Clock.Advance(TimeSpan.FromMilliseconds(100));
            pair.A.Tick();
        }
        // A gave up (well before the end) and then sent nothing: no keepalive, and no new
        // handshake that a keepalive without a usable session would start.
        Assert.NotEmpty(pair.IoA.Delivered);
        Assert.InRange(pair.Clock.MonotonicNanos - lastInitiation, 30 * Constants.NanosPerSecond, long.MaxValue);
        Assert.Empty(pair.IoA.Sent);
    }

    private static List<long> RunUnanswered(int seed, out int staged)
    {
        using var pair = new DevicePair(seed);
        var times = new List<long>();
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        for (int ms = 0; ms < 200_000; ms += 10)
        {
            foreach (Datagram d in pair.IoA.TakeSent())
            {
                Assert.Equal(MessageType.Initiation, d.Type);
                times.Add(pair.Clock.MonotonicNanos);
            }
            pair.Clock.Advance(TimeSpan.FromMilliseconds(10));
            pair.A.Tick();
        }
        staged = pair.PeerB.StagedCount;
        return times;
    }

    [Fact]
    public void NextDeadline_tells_the_host_when_to_tick()
    {
        using var pair = new DevicePair(seed: 25);
        Assert.Equal(long.MaxValue, pair.A.NextDeadlineNanos);
        pair.PeerB.InitiateHandshake();
        long deadline = pair.A.NextDeadlineNanos;
        long now = pair.Clock.MonotonicNanos;
        Assert.InRange(deadline - now, Constants.RekeyTimeoutNanos, Constants.RekeyTimeoutNanos + Constants.RekeyTimeoutJitterMaxNanos);
        pair.IoA.Sent.Clear();
        pair.Clock.AdvanceNanos(deadline - now - 1);
        pair.A.Tick();
        Assert.Empty(pair.IoA.Sent);
        pair.Clock.AdvanceNanos(1);
        pair.A.Tick();
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
    }

    [Fact]
    public void Passive_keepalive_after_receiving_data_and_sending_nothing_for_KEEPALIVE_TIMEOUT()
    {
        using var pair = new DevicePair(seed: 26);
        pair.Handshake();
        pair.Advance(TimeSpan.FromSeconds(12), Second);
        pair.IoB.Sent.Clear();

        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        pair.Pump();
        pair.Advance(TimeSpan.FromSeconds(9.5), TimeSpan.FromMilliseconds(500), pump: false);
        Assert.Empty(pair.IoB.Sent);
        pair.Advance(TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(500), pump: false);
        Datagram keepalive = Assert.Single(pair.IoB.Sent);
        Assert.Equal(MessageTransport.MinimumSize, keepalive.Bytes.Length);

        int deliveredBefore = pair.IoA.Delivered.Count;
        pair.Pump();
        Assert.Equal(deliveredBefore, pair.IoA.Delivered.Count); // keepalives are not delivered
    }

    [Fact]
    public void No_passive_keepalive_when_data_went_back_in_time()
    {
        using var pair = new DevicePair(seed: 27);
        pair.Handshake();
        pair.Advance(TimeSpan.FromSeconds(12), Second);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        pair.Pump();
        pair.B.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 1, 100));
        pair.Pump();
        pair.IoB.Sent.Clear();
        pair.Advance(TimeSpan.FromSeconds(11), Second, pump: false);
        Assert.Empty(pair.IoB.Sent);
    }

    [Fact]
    public void Persistent_keepalive_every_interval()
    {
        using var pair = new DevicePair(seed: 28);
        pair.Handshake();
        pair.Advance(TimeSpan.FromSeconds(12), Second);
        pair.PeerB.PersistentKeepaliveInterval = 25;
        var keepalives = new List<long>();
        for (int s = 0; s < 80; s++)
        {
            pair.Clock.Advance(Second);
            pair.A.Tick();
            pair.B.Tick();
            keepalives.AddRange(pair.IoA.Sent.Where(d => d.Bytes.Length == MessageTransport.MinimumSize).Select(_ => pair.Clock.MonotonicNanos));
            pair.Pump();
        }
        Assert.Equal(3, keepalives.Count);
        Assert.Equal(25 * Constants.NanosPerSecond, keepalives[1] - keepalives[0]);
        Assert.Equal(25 * Constants.NanosPerSecond, keepalives[2] - keepalives[1]);
    }

    [Fact]
    public void Sending_without_a_reply_starts_a_new_handshake_after_KEEPALIVE_plus_REKEY_TIMEOUT()
    {
        using var pair = new DevicePair(seed: 29);
        pair.Handshake();
        pair.Advance(TimeSpan.FromSeconds(12), Second);
        pair.IoA.Sent.Clear();
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 100));
        foreach (Datagram d in pair.IoA.TakeSent())
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);

        // B's answers (its keepalive) are lost.
        for (int ms = 0; ms < 14_900; ms += 100)
        {
            pair.Clock.Advance(TimeSpan.FromMilliseconds(100));
            pair.A.Tick();
            pair.B.Tick();
            pair.IoB.Sent.Clear();
        }
        Assert.Empty(pair.IoA.Sent);
        pair.Advance(TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(100), pump: false);
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
    }
}
