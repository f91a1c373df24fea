using Tunnel.Device;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>
/// Issue 12: the device's peer set at 20,000 peers. Adding and removing keep the order wg show
/// lists, a removed peer takes its allowed IPs with it, and the peer list is a live view that
/// enumerates without copying, even while peers are removed under it.
/// </summary>
public sealed class PeerSetTests : IDisposable
{
    private const int Count = 20_000;

    private readonly TunnelDevice _device = new(new DeviceOptions { Clock = new VirtualClock() }, new RecordingIo());
    private readonly byte[][] _keys = Keys(Count);

    public PeerSetTests()
    {
        var privateKey = new byte[32];
        privateKey[0] = 7;
        _device.SetPrivateKey(privateKey);
        for (int i = 0; i < Count; i++)
            _device.AllowedIps.Insert(Address(i), 32, _device.AddPeer(_keys[i]));
    }

    public void Dispose() => _device.Dispose();

    [Fact]
    public void Removing_in_the_middle_keeps_the_order_the_uapi_shows()
    {
        var removed = new HashSet<int>();
        for (int i = Count / 2 - 500; i < Count / 2 + 500; i++)
            removed.Add(i);
        removed.UnionWith([0, 1, Count - 1, 777, 15_000]);
        foreach (int i in removed)
            Assert.True(_device.RemovePeer(_keys[i]));
        Assert.False(_device.RemovePeer(_keys[0])); // already gone

        int[] expected = Enumerable.Range(0, Count).Where(i => !removed.Contains(i)).ToArray();
        Assert.Equal(expected.Length, _device.Peers.Count);
        Assert.Equal(expected.Select(i => Convert.ToHexString(_keys[i])),
            _device.Peers.Select(p => Convert.ToHexString(p.PublicKey.Bytes)));

        using UapiDeviceState state = new DeviceUapi(_device).GetState();
        Assert.Equal(expected.Select(i => Convert.ToHexString(_keys[i])), state.Peers.Select(p => Convert.ToHexString(p.PublicKey)));
        Assert.All(state.Peers, p => Assert.Single(p.AllowedIps));
    }

    [Fact]
    public void A_removed_peer_takes_its_allowed_ips_and_a_readded_key_goes_last()
    {
        Peer middle = _device.FindPeer(_keys[Count / 2])!;
        Assert.Same(middle, _device.AllowedIps.Lookup(Address(Count / 2)));
        _device.AllowedIps.Insert(Address(Count + 5), 32, middle); // a second prefix
        Assert.Equal(Count + 1, _device.AllowedIps.Count);

        Assert.True(_device.RemovePeer(_keys[Count / 2]));
        Assert.Null(_device.FindPeer(_keys[Count / 2]));
        Assert.Null(_device.AllowedIps.Lookup(Address(Count / 2)));
        Assert.Null(_device.AllowedIps.Lookup(Address(Count + 5)));
        Assert.Empty(_device.AllowedIps.EntriesForPeer(middle));
        Assert.Equal(Count - 1, _device.AllowedIps.Count);
        Assert.NotNull(_device.AllowedIps.Lookup(Address(Count / 2 - 1)));
        Assert.NotNull(_device.AllowedIps.Lookup(Address(Count / 2 + 1)));
        Assert.Null(_device.AllowedIps.FindInvariantViolation());

        Peer again = _device.AddPeer(_keys[Count / 2]);
        Assert.NotSame(middle, again);
        Assert.Same(again, _device.Peers.Last());
        Assert.Equal(Count, _device.Peers.Count);
    }

    [Fact]
    public void Peers_is_one_live_view_not_a_copy()
    {
        PeerList peers = _device.Peers;
        Assert.Same(peers, _device.Peers);
        _device.RemovePeer(_keys[3]);
        Assert.Equal(Count - 1, peers.Count);
        Assert.DoesNotContain(peers, p => p.PublicKey.Bytes.SequenceEqual(_keys[3]));
    }

    [Fact]
    public void Enumerating_while_peers_are_removed_sees_every_survivor_once()
    {
        // At every tenth step remove the peer the walk stands on and one two ahead of it: the walk
        // must still reach every peer that was never removed, once and in order.
        var seen = new List<Peer>();
        int step = 0;
        foreach (Peer peer in _device.Peers)
        {
            seen.Add(peer);
            if (step++ % 10 != 0)
                continue;
            Peer? further = peer.NextInDevice?.NextInDevice;
            _device.RemovePeer(peer.PublicKey.Bytes);
            if (further is not null)
                _device.RemovePeer(further.PublicKey.Bytes);
        }
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(_device.Peers, seen.Where(p => !p.IsRemoved));
        Assert.True(_device.Peers.Count < Count * 9 / 10);
    }

    [Fact]
    public void RemoveAllPeers_empties_the_list_and_the_table()
    {
        _device.RemoveAllPeers();
        Assert.Empty(_device.Peers);
        Assert.Equal(0, _device.Peers.Count);
        Assert.True(_device.AllowedIps.IsEmpty);
        Assert.Equal(0, _device.AllowedIps.Count);
        Assert.Null(_device.FindPeer(_keys[5]));
        Peer first = _device.AddPeer(_keys[5]);
        Assert.Same(first, Assert.Single(_device.Peers));
    }

    [Fact]
    public void An_idle_peer_holds_no_staged_ring_until_it_stages()
    {
        Peer peer = _device.FindPeer(_keys[9])!;
        Assert.False(peer.HasStagedRing);
        SendFirstPacket(peer, 9); // no session: staged, and an initiation goes out
        Assert.True(peer.HasStagedRing);
        Assert.Equal(1, peer.StagedCount);
        _device.RemovePeer(_keys[9]);
        Assert.False(peer.HasStagedRing);
    }

    [Fact]
    public void An_idle_peer_makes_no_cookie_generator_until_it_sends_a_handshake_message()
    {
        Peer peer = _device.FindPeer(_keys[8])!;
        Assert.Null(peer.CookieGeneratorIfMade);
        SendFirstPacket(peer, 8); // no session: an initiation goes out, with mac1
        Assert.NotNull(peer.CookieGeneratorIfMade);
        Assert.Null(_device.FindPeer(_keys[7])!.CookieGeneratorIfMade);
    }

    /// <summary>Gives peer <paramref name="i"/> an endpoint and sends it a packet.</summary>
    private void SendFirstPacket(Peer peer, int i)
    {
        peer.Endpoint = Endpoint.FromIPEndPoint(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 51820));
        byte[] packet = new byte[40];
        packet[0] = 0x45;
        Address(i).CopyTo(packet.AsSpan(16));
        _device.SendPacket(packet);
    }

    private static byte[][] Keys(int n)
    {
        var random = new Random(12);
        var keys = new byte[n][];
        for (int i = 0; i < n; i++)
        {
            keys[i] = new byte[32];
            random.NextBytes(keys[i]);
        }
        return keys;
    }

    private static byte[] Address(int i) => [10, (byte)(i >> 16), (byte)(i >> 8), (byte)i];
}
