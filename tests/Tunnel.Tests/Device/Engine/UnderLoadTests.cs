using Tunnel.Crypto;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>
/// Issue 12: what puts a device under load (cookie mode). A host with a handshake queue decides by
/// its depth alone, as wireguard-go and the kernel do; a host without one (ReceiveDatagram) counts
/// what can make it spend Diffie-Hellman work it did not ask for: initiations, and responses that
/// named a handshake of ours and failed, but not the responses that complete our own handshakes
/// (a hub rekeying thousands of peers a second must not answer its own rekey with cookie replies).
/// </summary>
public sealed class UnderLoadTests
{
    /// <summary>More messages than the queueless rate allows in one second.</summary>
    private const int Burst = TunnelDevice.UnderLoadHandshakesPerSecond + 88;

    [Fact]
    public void With_a_queue_only_its_depth_puts_the_device_under_load()
    {
        using var pair = new DevicePair(seed: 31);
        pair.PeerB.InitiateHandshake();
        byte[] initiation = Assert.Single(pair.IoA.TakeSent()).Bytes;

        // A worker that keeps up: many a second, never backlogged, never a cookie reply.
        for (int i = 0; i < Burst; i++)
            Assert.Equal(HandshakeAdmission.Consume, pair.B.AdmitHandshake(initiation, DevicePair.EndpointA, backlogged: false));

        // A backlogged queue: under load at once, and for the next second.
        Assert.Equal(HandshakeAdmission.CookieReply, pair.B.AdmitHandshake(initiation, DevicePair.EndpointA, backlogged: true));
        pair.Clock.Advance(TimeSpan.FromMilliseconds(900));
        Assert.Equal(HandshakeAdmission.CookieReply, pair.B.AdmitHandshake(initiation, DevicePair.EndpointA, backlogged: false));
        pair.Clock.Advance(TimeSpan.FromMilliseconds(200));
        Assert.Equal(HandshakeAdmission.Consume, pair.B.AdmitHandshake(initiation, DevicePair.EndpointA, backlogged: false));
    }

    [Fact]
    public void Without_a_queue_responses_to_our_own_initiations_do_not_count()
    {
        using var pair = new DevicePair(seed: 32);
        pair.PeerB.InitiateHandshake();
        pair.B.ReceiveDatagram(Assert.Single(pair.IoA.TakeSent()).Bytes, DevicePair.EndpointA);
        byte[] response = Assert.Single(pair.IoB.TakeSent()).Bytes;
        // The genuine response, then replays of it (a network duplicating, or an attacker): the
        // first completes our handshake, the others name a keypair now and cost a lookup.
        for (int i = 0; i < Burst; i++)
            pair.A.ReceiveDatagram(response, DevicePair.EndpointB);
        Assert.NotNull(pair.PeerB.Keypairs.Current);
        pair.IoA.Sent.Clear();

        // B's own initiation, in the same second: answered, not met with a cookie reply.
        pair.PeerA.Endpoint = DevicePair.EndpointB;
        pair.PeerA.InitiateHandshake();
        pair.A.ReceiveDatagram(Assert.Single(pair.IoB.TakeSent()).Bytes, DevicePair.EndpointB);
        Assert.Equal(MessageType.Response, Assert.Single(pair.IoA.TakeSent()).Type);
    }

    [Fact]
    public void Without_a_queue_forged_responses_to_a_pending_handshake_turn_cookie_mode_on()
    {
        using var pair = new DevicePair(seed: 33);
        pair.PeerB.InitiateHandshake(); // pending: its sender index is on the wire for anyone to see
        byte[] initiation = Assert.Single(pair.IoA.TakeSent()).Bytes;
        pair.B.ReceiveDatagram(initiation, DevicePair.EndpointA);
        byte[] forged = Assert.Single(pair.IoB.TakeSent()).Bytes;
        // Another ephemeral key, and a valid mac1 (it needs only A's public key): it passes
        // admission and costs A ee and se before its tag fails.
        forged[MessageResponse.NoiseOffset] ^= 0x40;
        using var mac = new CookieGenerator(new PublicKey(pair.PublicA));
        Assert.True(mac.AddMacs(forged, TimeSpan.Zero));
        Endpoint attacker = DevicePair.Parse("198.51.100.9:4000");
        for (int i = 0; i < Burst; i++)
            pair.A.ReceiveDatagram(forged, attacker);
        Assert.Null(pair.PeerB.Keypairs.Current);
        // Past the rate, the forgeries themselves are met with cookie replies (rate-limited).
        Assert.All(pair.IoA.TakeSent(), d => Assert.Equal(MessageType.CookieReply, d.Type));

        // Under load now: B's initiation, without a cookie yet, earns a cookie reply.
        pair.PeerA.Endpoint = DevicePair.EndpointB;
        pair.PeerA.InitiateHandshake();
        pair.A.ReceiveDatagram(Assert.Single(pair.IoB.TakeSent()).Bytes, DevicePair.EndpointB);
        Assert.Equal(MessageType.CookieReply, Assert.Single(pair.IoA.TakeSent()).Type);
    }
}
