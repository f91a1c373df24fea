using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Config;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>Which allowed IPs get a route (no root: the routes themselves are tested in
/// Integration.Tests' TunneldRoutesTests).</summary>
public sealed class InterfaceRoutesTests
{
    private static string Key() => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void EveryDistinctAllowedIpButDefaultsAndTheAddressesOwnPrefixes()
    {
        using var config = new ConfigParser().Parse($"""
            [Interface]
            PrivateKey = {Key()}
            Address = 10.8.0.1/24, fd08::1/64, 10.9.0.1/32

            [Peer]
            PublicKey = {Key()}
            AllowedIPs = 10.8.0.0/24, 10.8.0.2/32, 10.8.1.0/24, 0.0.0.0/0, fd08::2/128, fd09::/64

            [Peer]
            PublicKey = {Key()}
            AllowedIPs = 10.8.1.0/24, 10.9.0.1/32, 10.0.0.0/8, ::/0
            """, "wg0.conf");
        var routed = InterfaceRoutes.RoutedPrefixes(config, NullLogger.Instance, out int covered);
        // 10.8.0.0/24 and its /32, fd08::2: the addresses' prefix routes cover them. 10.9.0.1/32:
        // a host address has no prefix route. 10.0.0.0/8 is wider than 10.8.0.0/24: not covered.
        Assert.Equal(["10.8.1.0/24", "fd09::/64", "10.9.0.1/32", "10.0.0.0/8"], routed.Select(p => p.ToString()));
        Assert.Equal(3, covered);
    }

    [Theory]
    [InlineData("10.8.0.1", 24, "10.8.0.0/24", true)]
    [InlineData("10.8.0.1", 24, "10.8.0.255/32", true)]
    [InlineData("10.8.0.1", 24, "10.8.1.0/32", false)]
    [InlineData("10.8.0.1", 23, "10.8.1.0/24", true)]
    [InlineData("10.8.0.1", 25, "10.8.0.128/25", false)]
    [InlineData("10.8.0.1", 32, "10.8.0.1/32", false)]
    [InlineData("fd08::1", 64, "fd08::/64", true)]
    [InlineData("fd08::1", 64, "fd08:0:0:1::/64", false)]
    [InlineData("fd08::1", 128, "fd08::1/128", false)]
    [InlineData("10.8.0.1", 24, "::a08:0/120", false)]
    public void AnAddressRoutesIntoItsOwnPrefixOnly(string address, int length, string prefix, bool routes) =>
        Assert.Equal(routes, InterfaceRoutes.RoutesInto(new InterfaceAddress(IPAddress.Parse(address), length), IPNetwork.Parse(prefix)));
}
