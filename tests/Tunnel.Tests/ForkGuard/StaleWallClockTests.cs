using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>
/// The TAI64N pitfall: a responder refuses an initiation whose timestamp is not newer than the last
/// one it accepted, and a VM restored from a snapshot may wake with its wall clock in the past.
/// </summary>
public sealed class StaleWallClockTests
{
    [Fact]
    public void Next_whitened_is_one_whitener_step_later_and_carries_into_the_seconds()
    {
        var t = new Tai64N(Tai64N.Base + 100, 3u << 24);
        Assert.Equal(new Tai64N(Tai64N.Base + 100, 4u << 24), t.NextWhitened());
        Assert.True(t.NextWhitened().After(t));
        var last = new Tai64N(Tai64N.Base + 100, 59u << 24); // 989,855,744 ns: the last step of a second
        Assert.Equal(new Tai64N(Tai64N.Base + 101, 0), last.NextWhitened());
        // An unwhitened value (from the wire) still moves strictly forward.
        var odd = new Tai64N(Tai64N.Base, 5);
        Assert.True(odd.NextWhitened().After(odd));
    }

    [Fact]
    public void A_sender_whose_wall_clock_went_back_still_sends_a_newer_timestamp_and_is_accepted()
    {
        using var pair = new DevicePair();
        pair.Handshake();
        Tai64N first = pair.PeerA.Handshake!.LastTimestamp;

        // Restored from an hour-old snapshot: the wall clock is an hour behind.
        pair.Clock.SetUtcNow(pair.Clock.UtcNow - TimeSpan.FromHours(1));
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        Keypair before = pair.PeerB.Keypairs.Current!;
        pair.PeerB.ExpireCurrentKeypairs();
        pair.PeerB.InitiateHandshake();
        pair.Pump();

        Tai64N second = pair.PeerA.Handshake!.LastTimestamp;
        Assert.True(second.After(first));
        Assert.Equal(first.NextWhitened(), second);
        Keypair after = pair.PeerB.Keypairs.Current!;
        Assert.NotSame(before, after);
        Assert.True(after.CanSend);
    }

    [Fact]
    public void Without_the_rule_the_stale_timestamp_would_have_been_refused()
    {
        // Negative control: the responder does refuse an older timestamp (so the test above proves the fix).
        using var pair = new DevicePair();
        pair.Handshake();
        Tai64N accepted = pair.PeerA.Handshake!.LastTimestamp;
        Tai64N stale = Tai64N.FromDateTime(pair.Clock.UtcNow - TimeSpan.FromHours(1));
        Assert.False(stale.After(accepted));
    }

    [Fact]
    public void The_last_timestamp_sent_travels_with_a_snapshot()
    {
        using var pair = new DevicePair();
        pair.Handshake();
        using TunnelDeviceState state = pair.A.CaptureState();
        using var clone = new TunnelDevice(new DeviceOptions { Clock = pair.Clock, Random = new Noise.SeededRandom(77) },
            pair.IoA);
        clone.RestoreState(state);
        pair.Clock.SetUtcNow(pair.Clock.UtcNow - TimeSpan.FromDays(1));
        pair.Clock.Advance(TimeSpan.FromSeconds(6));
        Peer peerB = clone.Peers.Single();
        peerB.ExpireCurrentKeypairs();
        peerB.InitiateHandshake();
        Tai64N before = pair.PeerA.Handshake!.LastTimestamp;
        foreach (Datagram d in pair.IoA.TakeSent())
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);
        Assert.True(pair.PeerA.Handshake!.LastTimestamp.After(before));
        Assert.Contains(pair.IoB.Sent, d => d.Type == MessageType.Response);
    }
}
