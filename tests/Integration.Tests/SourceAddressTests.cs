using System.Text.RegularExpressions;
using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// Source-address stickiness (issue 15; kernel WireGuard's netns.sh checks the same): tunneld's
/// host has two addresses on one link, and the peer, wireguard-go, writes to the one routing
/// would NOT pick as the source of a reply. tunneld must answer from the address the peer wrote
/// to; otherwise wireguard-go roams its endpoint to the other one (it follows the source of every
/// authenticated packet), which is what a peer behind a strict NAT or firewall never sees at all.
/// </summary>
[Collection(RootCollection.Name)]
public sealed partial class SourceAddressTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-source-").FullName;
    private readonly KeyPair _a = KeyPair.Create();
    private readonly KeyPair _b = KeyPair.Create();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Replies_leave_from_the_address_the_peer_wrote_to(bool ipv6)
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go");
        var (a, b) = NetNs.CreateLinkedPair("srca", "srcb");
        using var _ = a;
        using var __ = b;
        // A second address on each side, in the same subnet as the first.
        string peerAddress;
        if (ipv6)
        {
            a.Check("ip", "-6", "addr", "add", "fd99::1/64", "dev", "veth-a", "nodad");
            a.Check("ip", "-6", "addr", "add", "fd99::3/64", "dev", "veth-a", "nodad");
            b.Check("ip", "-6", "addr", "add", "fd99::2/64", "dev", "veth-b", "nodad");
            peerAddress = "fd99::2";
        }
        else
        {
            a.Check("ip", "addr", "add", "10.99.0.3/24", "dev", "veth-a");
            peerAddress = "10.99.0.2";
        }
        // The address routing prefers for a reply to B: the test makes B write to the other one.
        var preferred = SourceRegex().Match(a.Check("ip", "route", "get", peerAddress)).Groups[1].Value;
        var other = ipv6 ? (preferred == "fd99::1" ? "fd99::3" : "fd99::1")
                         : (preferred == "10.99.0.1" ? "10.99.0.3" : "10.99.0.1");
        Assert.False(string.IsNullOrEmpty(preferred), "ip route get printed no source");
        var otherEndpoint = ipv6 ? $"[{other}]:51820" : $"{other}:51820";

        var name = NetNs.UniqueInterfaceName("td");
        var daemon = StartTunneld(a, _dir, name, $"""
            [Interface]
            PrivateKey = {_a.Private}
            ListenPort = 51820
            Address = 10.200.0.1/24

            [Peer]
            PublicKey = {_b.Public}
            AllowedIPs = 10.200.0.2/32
            """);
        var wgGo = NetNs.UniqueInterfaceName("wg");
        StartWireguardGo(b, wgGo);
        ConfigureWg(b, wgGo, 51821, _b, _a.Public, "10.200.0.1/32", otherEndpoint, ["10.200.0.2/24"]);

        // B starts the handshake and the traffic; everything A sends back is a reply.
        Ping(b, "10.200.0.1", count: 5, daemon: daemon);
        Ping(a, "10.200.0.2", count: 3, daemon: daemon);

        var seen = PeerDump(b, wgGo)[2];
        Assert.True(seen == otherEndpoint,
            $"wireguard-go now sees tunneld at {seen}, not {otherEndpoint} which it wrote to (routing prefers {preferred}):\n{daemon.Output}");
    }

    [GeneratedRegex(@"\bsrc (\S+)")]
    private static partial Regex SourceRegex();
}
