using System.Net;
using System.Net.Sockets;
using Tunnel.Device;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

public sealed class EndpointAddressTests
{
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

        var destination = bind.CreateReceiveAddress();
        var source = bind.CreateReceiveAddress();
        var datagram = new byte[64];
        var reply = new byte[64];
        peer.SendTo("warm-up"u8, new IPEndPoint(address, bind.Port));
        bind.Receive(datagram, source);

        // The engine's path: write the destination, send, receive the answer, read its source.
        for (var i = 0; i < 3; i++)
        {
            Assert.True(EndpointAddress.TryWrite(peerEndpoint, bind.AddressFamily, destination));
            Assert.True(bind.Send("ping"u8, destination));
            var n = peer.Receive(reply);
            Assert.Equal(4, n);
            peer.SendTo(reply.AsSpan(0, n), new IPEndPoint(address, bind.Port));
            Assert.Equal(4, bind.Receive(datagram, source));
            Assert.True(EndpointAddress.Read(source).Equals(peerEndpoint));
        }

        // UdpBind's own send and receive allocate nothing (UdpBindTests); neither may this.
        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                EndpointAddress.TryWrite(peerEndpoint, bind.AddressFamily, destination);
                _ = EndpointAddress.Read(destination);
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
        var expected = new IPEndPoint(IPAddress.Parse(ip), port);
        var endpoint = Endpoint.FromIPEndPoint(expected);
        var written = bind.CreateReceiveAddress();
        Assert.True(EndpointAddress.TryWrite(endpoint, bind.AddressFamily, written));
        Assert.Equal(bind.ToSocketAddress(expected), written);
        Assert.True(EndpointAddress.Read(written).Equals(endpoint));
        Assert.Equal(expected, UdpBind.ToEndPoint(written));
    }

    [Fact]
    public void AnIpv6EndpointCannotGoThroughAnIpv4Socket()
    {
        var address = new SocketAddress(AddressFamily.InterNetwork);
        Assert.False(EndpointAddress.TryWrite(Endpoint.FromIPEndPoint(IPEndPoint.Parse("[2001:db8::1]:5")),
            AddressFamily.InterNetwork, address));
        Assert.True(EndpointAddress.TryWrite(Endpoint.FromIPEndPoint(IPEndPoint.Parse("192.0.2.1:5")),
            AddressFamily.InterNetwork, address));
        Assert.Equal(IPEndPoint.Parse("192.0.2.1:5"), UdpBind.ToEndPoint(address));
        Assert.Equal("192.0.2.1:5", EndpointAddress.Read(address).ToString());
    }
}
