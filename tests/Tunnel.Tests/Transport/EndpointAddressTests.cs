using System.Net;
using System.Net.Sockets;
using Tunnel.Device;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

public sealed class EndpointAddressTests
{
    private static Endpoint Read(SocketAddress address)
    {
        Assert.True(EndpointAddress.TryRead(address.Buffer.Span[..address.Size], out var endpoint));
        return endpoint;
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void SendsToAnEndpointAndReadsTheSourceBackWithoutAllocating(string loopback)
    {
        using var bind = UdpBind.Open(0);
        var address = IPAddress.Parse(loopback);
        using var peer = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        peer.Bind(new IPEndPoint(address, 0));
        peer.ReceiveTimeout = 10_000;
        var peerEndpoint = Endpoint.FromIPEndPoint((IPEndPoint)peer.LocalEndPoint!);

        var destination = new SocketAddress(bind.AddressFamily);
        using var batch = new UdpReceiveBatch();
        var reply = new byte[64];

        // The engine's path: write the destination, send, receive the answer, read its source.
        for (var i = 0; i < 3; i++)
        {
            Assert.True(EndpointAddress.TryWrite(peerEndpoint, bind.AddressFamily, destination));
            Assert.True(bind.Send("ping"u8, destination, peerEndpoint));
            var n = peer.Receive(reply);
            Assert.Equal(4, n);
            peer.SendTo(reply.AsSpan(0, n), new IPEndPoint(address, bind.Port));
            Assert.Equal(1, bind.ReceiveBatch(batch));
            Assert.Equal(4, batch.Data(0).Length);
            Assert.True(EndpointAddress.TryRead(batch.Source(0), out var from));
            Assert.True(from.Equals(peerEndpoint));
        }

        // UdpBind's own send and receive allocate nothing (UdpBindTests); neither may this.
        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                EndpointAddress.TryWrite(peerEndpoint, bind.AddressFamily, destination);
                EndpointAddress.TryRead(destination.Buffer.Span[..destination.Size], out _);
            }
        }));
    }

    [Theory]
    [InlineData("192.0.2.7", 51820)]
    [InlineData("2001:db8::7", 1)]
    [InlineData("fe80::1", 65535)]
    [InlineData("fe80::1%1", 51820)]
    public void WriteThenReadIsTheSameEndpointAndTheSameSocketAddressAsDotnetMakes(string ip, int port)
    {
        using var bind = UdpBind.Open(0);
        Assert.True(bind.DualStack);
        var expected = new IPEndPoint(IPAddress.Parse(ip), port);
        var endpoint = Endpoint.FromIPEndPoint(expected);
        var written = new SocketAddress(bind.AddressFamily);
        Assert.True(EndpointAddress.TryWrite(endpoint, bind.AddressFamily, written));
        // On the dual-stack socket .NET maps IPv4 into IPv6 the same way.
        var mapped = expected.Address.AddressFamily == AddressFamily.InterNetwork ? expected.Address.MapToIPv6() : expected.Address;
        Assert.Equal(new IPEndPoint(mapped, port).Serialize(), written);
        Assert.True(Read(written).Equals(endpoint));
        Assert.Equal(expected, Read(written).ToIPEndPoint());
    }

    [Fact]
    public void AnIpv6EndpointCannotGoThroughAnIpv4Socket()
    {
        var address = new SocketAddress(AddressFamily.InterNetwork);
        Assert.False(EndpointAddress.TryWrite(Endpoint.FromIPEndPoint(IPEndPoint.Parse("[2001:db8::1]:5")),
            AddressFamily.InterNetwork, address));
        Assert.True(EndpointAddress.TryWrite(Endpoint.FromIPEndPoint(IPEndPoint.Parse("192.0.2.1:5")),
            AddressFamily.InterNetwork, address));
        Assert.Equal(IPEndPoint.Parse("192.0.2.1:5"), Read(address).ToIPEndPoint());
        Assert.Equal("192.0.2.1:5", Read(address).ToString());
    }
}
