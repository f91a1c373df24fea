using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>
/// Issue 12 (memory at 100,000 peers): what only a handshake needs is made by the first handshake,
/// not with the peer, and is zeroed when the peer is removed.
/// </summary>
public sealed class IdlePeerMemoryTests
{
    [Fact]
    public void An_idle_peer_holds_no_noise_state_static_static_or_preshared_key()
    {
        using var pair = new DevicePair();
        foreach (Peer peer in new[] { pair.PeerA, pair.PeerB })
        {
            Handshake handshake = peer.Handshake!;
            Assert.False(handshake.HasNoiseState);
            Assert.False(handshake.HasStaticStatic);
            Assert.False(handshake.HasPresharedKey);
            Assert.Null(peer.CookieGeneratorIfMade);
        }
        pair.PeerB.SetPresharedKey(new byte[32]); // all zeros: none, so nothing is made
        Assert.False(pair.PeerB.Handshake!.HasPresharedKey);
    }

    [Fact]
    public void The_first_handshake_makes_them_on_both_sides()
    {
        using var pair = new DevicePair();
        pair.Handshake();
        foreach (Peer peer in new[] { pair.PeerA, pair.PeerB })
        {
            Handshake handshake = peer.Handshake!;
            Assert.True(handshake.HasNoiseState);
            Assert.True(handshake.HasStaticStatic);
            Assert.False(handshake.HasPresharedKey); // none was set
            Assert.NotNull(peer.CookieGeneratorIfMade); // initiation and response both carry mac1
        }
    }

    [Fact]
    public void A_cookie_reply_lands_in_the_generator_the_initiation_made_and_removal_zeroes_it()
    {
        using var pair = new DevicePair();
        pair.B.UnderLoad = true; // B answers an initiation without mac2 with a cookie reply
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0, 64));
        pair.Pump();
        CookieGenerator generator = pair.PeerB.CookieGeneratorIfMade!;
        Assert.NotNull(generator);
        Assert.True(generator.HasCookie(TimeSpan.FromTicks(pair.Clock.MonotonicNanos / TimeSpan.NanosecondsPerTick)));
        Assert.False(CookieZero(generator));

        Assert.True(pair.A.RemovePeer(pair.PublicB));
        Assert.True(CookieZero(generator));
    }

    private static bool CookieZero(CookieGenerator generator)
    {
        byte[] cookie = new byte[CookieConstants.CookieSize];
        generator.Capture(cookie, new byte[CookieConstants.MacSize], out _);
        return cookie.AsSpan().IndexOfAnyExcept((byte)0) < 0;
    }

    [Fact]
    public void A_preshared_key_is_held_and_removal_zeroes_every_handshake_secret()
    {
        using var pair = new DevicePair();
        byte[] psk = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        pair.PeerA.SetPresharedKey(psk);
        pair.PeerB.SetPresharedKey(psk);
        pair.Handshake(); // the handshake completes only if both used the key
        Handshake initiator = pair.PeerB.Handshake!;
        Handshake responder = pair.PeerA.Handshake!;
        Assert.True(initiator.HasPresharedKey);
        Assert.False(initiator.SecretsZeroed); // ss and the psk at least
        Assert.False(responder.SecretsZeroed);

        Assert.True(pair.A.RemovePeer(pair.PublicB));
        Assert.True(pair.B.RemovePeer(pair.PublicA));
        Assert.True(initiator.SecretsZeroed);
        Assert.True(responder.SecretsZeroed);
    }
}
