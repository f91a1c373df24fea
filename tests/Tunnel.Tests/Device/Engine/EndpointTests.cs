using System.Net;
using System.Net.Sockets;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

public sealed class EndpointTests
{
    [Theory]
    [InlineData("1.2.3.4:51820", AddressFamily.InterNetwork, 51820)]
    [InlineData("[::1]:51820", AddressFamily.InterNetworkV6, 51820)]
    [InlineData("[2001:db8::1]:1", AddressFamily.InterNetworkV6, 1)]
    [InlineData("0.0.0.0:0", AddressFamily.InterNetwork, 0)]
    public void Parses_and_prints_the_wg_format(string text, AddressFamily family, int port)
    {
        Assert.True(Endpoint.TryParse(text, out Endpoint ep));
        Assert.Equal(family, ep.Family);
        Assert.Equal(port, ep.Port);
        Assert.Equal(text, ep.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("1.2.3.4")]
    [InlineData("1.2.3.4:")]
    [InlineData("1.2.3.4:65536")]
    [InlineData("1.2.3.4:-1")]
    [InlineData("::1:51820")]
    [InlineData("[1.2.3.4]:51820")]
    [InlineData("host:51820")]
    public void Rejects_what_is_not_an_endpoint(string text) => Assert.False(Endpoint.TryParse(text, out _));

    [Fact]
    public void Round_trips_through_IPEndPoint_and_maps_IPv4_in_IPv6_to_IPv4()
    {
        var v6 = new IPEndPoint(IPAddress.Parse("2001:db8::5"), 443);
        Assert.Equal(v6, Endpoint.FromIPEndPoint(v6).ToIPEndPoint());
        var mapped = new IPEndPoint(IPAddress.Parse("::ffff:10.0.0.1"), 7);
        Endpoint ep = Endpoint.FromIPEndPoint(mapped);
        Assert.Equal(AddressFamily.InterNetwork, ep.Family);
        Assert.Equal("10.0.0.1:7", ep.ToString());
        Span<byte> bytes = stackalloc byte[16];
        ep.WriteAddressBytes(bytes, out int length);
        Assert.Equal(4, length);
        Assert.Equal(new byte[] { 10, 0, 0, 1 }, bytes[..4].ToArray());
    }

    [Fact]
    public void Equality_is_by_address_and_port()
    {
        Endpoint a = DevicePair.Parse("10.0.0.1:1");
        Assert.Equal(a, DevicePair.Parse("10.0.0.1:1"));
        Assert.NotEqual(a, DevicePair.Parse("10.0.0.1:2"));
        Assert.NotEqual(a, DevicePair.Parse("10.0.0.2:1"));
        Assert.NotEqual(DevicePair.Parse("[::a00:1]:1"), a);
    }
}
