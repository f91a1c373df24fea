using System.Net;
using Tunnel.Uapi;

using Xunit;

namespace Tunnel.Tests.Uapi;

public sealed class UapiGetWriterTests
{
    private static string Format(UapiDeviceState state)
    {
        using var buffer = new UapiReplyBuffer(8);
        UapiGetWriter.Write(state, buffer);
        return buffer.ToString();
    }

    [Fact]
    public void MatchesWireguardGoLineForLine()
    {
        var state = new UapiDeviceState { PrivateKey = Enumerable.Repeat((byte)0xA1, 32).ToArray(), ListenPort = 51820 };
        var peer = new UapiPeerState
        {
            PublicKey = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(),
            Endpoint = new IPEndPoint(IPAddress.Parse("10.99.0.2"), 51821),
            LastHandshakeUnixNanos = 1_763_750_000_123_456_789,
            TxBytes = 788,
            RxBytes = 732,
        };
        peer.AllowedIps.Add(IPNetwork.Parse("10.200.0.2/32"));
        peer.AllowedIps.Add(IPNetwork.Parse("fd00::/64"));
        state.Peers.Add(peer);
        Assert.Equal(
            "private_key=a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\n" +
            "listen_port=51820\n" +
            "public_key=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" +
            "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n" +
            "protocol_version=1\n" +
            "endpoint=10.99.0.2:51821\n" +
            "last_handshake_time_sec=1763750000\n" +
            "last_handshake_time_nsec=123456789\n" +
            "tx_bytes=788\n" +
            "rx_bytes=732\n" +
            "persistent_keepalive_interval=0\n" +
            "allowed_ip=10.200.0.2/32\n" +
            "allowed_ip=fd00::/64\n",
            Format(state));
    }

    [Fact]
    public void ZeroValuesAreOmittedLikeWireguardGo()
    {
        Assert.Equal("", Format(new UapiDeviceState { PrivateKey = new byte[32] }));
        Assert.Equal("fwmark=4660\n", Format(new UapiDeviceState { FwMark = 4660 }));
    }

    [Fact]
    public void EndpointsAreFormattedAsGoDoes()
    {
        Assert.Equal("[fd00::2]:51820", UapiGetWriter.FormatEndpoint(new IPEndPoint(IPAddress.Parse("fd00::2"), 51820)));
        Assert.Equal("10.0.0.1:7", UapiGetWriter.FormatEndpoint(new IPEndPoint(IPAddress.Parse("::ffff:10.0.0.1"), 7)));
    }

    [Fact]
    public void ExtraKeysGoBeforeThePeers()
    {
        var state = new UapiDeviceState { ListenPort = 1 };
        state.ExtraKeys.Add(new("fork_generation", "3"));
        state.Peers.Add(new UapiPeerState { PublicKey = new byte[32] });
        var text = Format(state);
        Assert.StartsWith("listen_port=1\nfork_generation=3\npublic_key=", text);
    }

    [Theory]
    [InlineData("public_key", "x")]
    [InlineData("errno", "0")]
    [InlineData("rx_bytes", "0")]
    [InlineData("Fork", "1")]
    [InlineData("a=b", "1")]
    [InlineData("", "1")]
    [InlineData("fork_generation", "1\nprivate_key=00")]
    public void ReservedOrMalformedExtraKeysAreRefused(string key, string value)
    {
        Assert.False(UapiGetWriter.IsValidExtraKey(key, value));
        var state = new UapiDeviceState();
        state.ExtraKeys.Add(new(key, value));
        Assert.Throws<ArgumentException>(() => Format(state));
    }

    [Fact]
    public void HexKeyRoundTrips()
    {
        var key = Enumerable.Range(100, 32).Select(i => (byte)i).ToArray();
        var hex = new char[64];
        HexKey.Encode(key, hex);
        var back = new byte[32];
        Assert.True(HexKey.TryDecode(new string(hex).ToUpperInvariant(), back));
        Assert.Equal(key, back);
        Assert.False(HexKey.TryDecode(new string(hex)[..63] + "z", back));
        Assert.All(back, b => Assert.Equal(0, b));
    }
}
