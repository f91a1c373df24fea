using System.Net;
using Tunnel.Device;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Uapi;

/// <summary>The UAPI over the real engine: set semantics as wireguard-go's, get reading them back.</summary>
public sealed class DeviceUapiTests : IDisposable
{
    private static readonly string PrivateHex = new('1', 64);
    private static readonly string PeerHex = new('a', 64);
    private static readonly string Peer2Hex = new('b', 64);
    private static readonly string PskHex = new('c', 64);

    private readonly RecordingIo _io = new();
    private readonly VirtualClock _clock = new();
    private readonly TunnelDevice _device;
    private readonly FakeBind _bind = new();
    private readonly DeviceUapi _uapi;

    public DeviceUapiTests()
    {
        _device = new TunnelDevice(new DeviceOptions { Clock = _clock }, _io);
        _uapi = new DeviceUapi(_device, _bind);
    }

    public void Dispose() => _device.Dispose();

    private sealed class RecordingIo : IDeviceIo
    {
        public readonly List<(byte[] Datagram, Endpoint To)> Sent = [];

        public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to)
        {
            lock (Sent)
                Sent.Add((datagram.ToArray(), to));
        }

        public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from)
        {
        }
    }

    private sealed class FakeBind : IUapiBind
    {
        public int Result = UapiErrno.Ok;
        public readonly List<(ushort Port, uint Mark)> Calls = [];

        public int Update(ushort listenPort, uint fwmark, out ushort boundPort)
        {
            Calls.Add((listenPort, fwmark));
            boundPort = listenPort == 0 ? (ushort)40000 : listenPort;
            return Result;
        }
    }

    private int Set(params string[] lines)
    {
        var parser = new UapiSetParser();
        foreach (var line in lines)
            parser.Line(line);
        Assert.Equal(UapiErrno.Ok, parser.Errno);
        using var request = parser.Request;
        return _uapi.ApplySet(request);
    }

    private string Get()
    {
        using var reply = new UapiReplyBuffer();
        UapiGetWriter.Write(_uapi.GetState(), reply);
        return reply.ToString();
    }

    [Fact]
    public void SetIsReadBackByGetInWireguardGoOrder()
    {
        Assert.Equal(UapiErrno.Ok, Set($"private_key={PrivateHex}", "listen_port=51820", "fwmark=7",
            $"public_key={PeerHex}", $"preshared_key={PskHex}", "endpoint=192.0.2.1:51821",
            "allowed_ip=10.0.0.0/24", "allowed_ip=fd00::/64"));
        Assert.Equal([(51820, 7u)], _bind.Calls);
        var expectedPrivate = new byte[32];
        _device.CopyPrivateKey(expectedPrivate);
        Assert.Equal($"""
            private_key={Convert.ToHexStringLower(expectedPrivate)}
            listen_port=51820
            fwmark=7
            public_key={PeerHex}
            preshared_key={PskHex}
            protocol_version=1
            endpoint=192.0.2.1:51821
            last_handshake_time_sec=0
            last_handshake_time_nsec=0
            tx_bytes=0
            rx_bytes=0
            persistent_keepalive_interval=0
            allowed_ip=10.0.0.0/24
            allowed_ip=fd00::/64

            """.Replace("\r", ""), Get());
    }

    [Fact]
    public void TurningPersistentKeepaliveOnSendsAtOnce()
    {
        Set($"private_key={PrivateHex}", $"public_key={PeerHex}", "endpoint=192.0.2.1:51821", "allowed_ip=10.0.0.0/24");
        Assert.Empty(_io.Sent);
        Set($"public_key={PeerHex}", "persistent_keepalive_interval=25");
        // No session yet: the keepalive waits and a handshake initiation (type 1, 148 bytes) goes out.
        var (datagram, to) = Assert.Single(_io.Sent);
        Assert.Equal(1, datagram[0]);
        Assert.Equal(148, datagram.Length);
        Assert.Equal("192.0.2.1:51821", to.ToString());
        Assert.Equal(25, _device.FindPeer(Convert.FromHexString(PeerHex))!.PersistentKeepaliveInterval);

        // Setting it again (already on) sends nothing more.
        _clock.Advance(TimeSpan.FromSeconds(1));
        Set($"public_key={PeerHex}", "persistent_keepalive_interval=30");
        Assert.Single(_io.Sent);
    }

    [Fact]
    public void UpdateOnlyRemoveReplacePeersAndAllowedIps()
    {
        Set($"private_key={PrivateHex}", $"public_key={PeerHex}", "allowed_ip=10.0.0.0/24", "allowed_ip=10.1.0.0/24");
        Set($"public_key={Peer2Hex}", "update_only=true", "allowed_ip=10.2.0.0/24");
        Assert.Single(_device.Peers);

        Set($"public_key={PeerHex}", "allowed_ip=-10.0.0.0/24");
        var peer = _device.FindPeer(Convert.FromHexString(PeerHex))!;
        Assert.Equal([IPNetwork.Parse("10.1.0.0/24")], _device.AllowedIps.EntriesForPeer(peer));
        Set($"public_key={PeerHex}", "replace_allowed_ips=true", "allowed_ip=10.3.0.0/24");
        Assert.Equal([IPNetwork.Parse("10.3.0.0/24")], _device.AllowedIps.EntriesForPeer(peer));

        Set("replace_peers=true", $"public_key={Peer2Hex}");
        var only = Assert.Single(_device.Peers);
        Assert.Null(_device.FindPeer(Convert.FromHexString(PeerHex)));
        Assert.Equal(0, _device.AllowedIps.Count);

        Set($"public_key={Peer2Hex}", "remove=true");
        Assert.Empty(_device.Peers);
    }

    [Fact]
    public void APeerWithTheDevicesOwnPublicKeyIsIgnored()
    {
        Set($"private_key={PrivateHex}");
        var own = new byte[32];
        _device.CopyPublicKey(own);
        Set($"public_key={Convert.ToHexStringLower(own)}", "allowed_ip=10.0.0.0/8");
        Assert.Empty(_device.Peers);
    }

    [Fact]
    public void ABindFailureChangesNothing()
    {
        Set($"private_key={PrivateHex}", "listen_port=51820", $"public_key={PeerHex}");
        var before = Get();
        _bind.Result = UapiErrno.PortInUse;
        Assert.Equal(UapiErrno.PortInUse, Set("listen_port=51821", "replace_peers=true", $"private_key={new string('2', 64)}",
            $"public_key={Peer2Hex}"));
        Assert.Equal(before, Get());
    }

    [Fact]
    public void AnAllZeroPrivateKeyRemovesIt()
    {
        Set($"private_key={PrivateHex}");
        Assert.True(_device.HasPrivateKey);
        Set($"private_key={new string('0', 64)}");
        Assert.False(_device.HasPrivateKey);
        Assert.DoesNotContain("private_key", Get());
    }
}
