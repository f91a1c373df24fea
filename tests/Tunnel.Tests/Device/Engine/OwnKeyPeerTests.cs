using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>A peer can never be the device itself (the kernel ignores or removes such a peer).</summary>
public sealed class OwnKeyPeerTests
{
    [Fact]
    public void Adding_a_peer_with_the_device_public_key_is_refused_and_changes_nothing()
    {
        using var pair = new DevicePair();
        byte[] digest = pair.A.StateDigest();
        Assert.Throws<ArgumentException>(() => pair.A.AddPeer(pair.PublicA));
        Assert.Single(pair.A.Peers);
        Assert.Null(pair.A.FindPeer(pair.PublicA));
        Assert.Equal(digest, pair.A.StateDigest());
    }

    [Fact]
    public void Setting_a_private_key_whose_public_key_is_a_peer_removes_that_peer()
    {
        using var pair = new DevicePair();
        pair.Handshake();
        Keypair session = pair.PeerB.Keypairs.Current!;
        byte[] secretB = new byte[32];
        pair.B.CopyPrivateKey(secretB);

        pair.A.SetPrivateKey(secretB); // A now has B's identity: its peer B would be itself

        Assert.Empty(pair.A.Peers);
        Assert.Null(pair.A.FindPeer(pair.PublicB));
        Assert.Null(pair.A.AllowedIps.Lookup(DevicePair.AddressB));
        Assert.True(session.IsZeroed);
        Assert.Equal(0, pair.A.Indexes.Count);
    }
}
