using Tunnel.Config;

using Xunit;

namespace Tunnel.Tests.Config;

public sealed class IpPrefixTests
{
    [Theory]
    [InlineData("10.1.2.3/8", "10.0.0.0/8")]
    [InlineData("10.1.2.3", "10.1.2.3/32")]
    [InlineData("0.0.0.0/0", "0.0.0.0/0")]
    [InlineData("192.168.77.255/23", "192.168.76.0/23")]
    [InlineData("fd00::1234/64", "fd00::/64")]
    [InlineData("::/0", "::/0")]
    [InlineData("2001:db8:ffff::1/33", "2001:db8:8000::/33")]
    [InlineData("fd00::1", "fd00::1/128")]
    public void MasksHostBits(string text, string expected)
    {
        Assert.True(IpPrefix.TryParse(text, out var prefix));
        Assert.Equal(expected, prefix.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("/8")]
    [InlineData("10.0.0.0/33")]
    [InlineData("10.0.0.0/-1")]
    [InlineData("10.0.0.0/+8")]
    [InlineData("10.0.0.0/ 8")]
    [InlineData("10.0.0/8")]
    [InlineData("1/8")]
    [InlineData("::/129")]
    [InlineData("fe80::1%2/64")]
    [InlineData("host.example/32")]
    [InlineData("10.0.0.0/0008")]
    public void RefusesMalformed(string text) => Assert.False(IpPrefix.TryParse(text, out _));
}
