using System.Net;
using Tunnel.Uapi;

using Xunit;

namespace Tunnel.Tests.Uapi;

public sealed class UapiSetParserTests
{
    private const string HexA = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
    private const string HexB = "B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2B2";

    private static UapiSetParser Parse(params string[] lines)
    {
        var parser = new UapiSetParser();
        foreach (var line in lines)
            parser.Line(line);
        return parser;
    }

    [Fact]
    public void EveryKeyParses()
    {
        var p = Parse("private_key=" + HexA, "listen_port=51820", "fwmark=4660", "replace_peers=true",
            "public_key=" + HexB, "update_only=true", "preshared_key=" + HexA, "endpoint=10.99.0.2:51821",
            "persistent_keepalive_interval=25", "replace_allowed_ips=true", "allowed_ip=10.200.0.7/24",
            "allowed_ip=-fd00::1/128", "protocol_version=1",
            "public_key=" + HexA, "remove=true");
        Assert.Equal(UapiErrno.Ok, p.Errno);
        var r = p.Request;
        Assert.Equal(Enumerable.Repeat((byte)0xA1, 32), r.PrivateKey!);
        Assert.Equal((ushort)51820, r.ListenPort);
        Assert.Equal(4660u, r.FwMark);
        Assert.True(r.ReplacePeers);
        Assert.Equal(2, r.Peers.Count);
        var b = r.Peers[0];
        Assert.Equal(Enumerable.Repeat((byte)0xB2, 32), b.PublicKey);
        Assert.True(b.UpdateOnly);
        Assert.False(b.Remove);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.99.0.2"), 51821), b.Endpoint);
        Assert.Equal((ushort)25, b.PersistentKeepaliveInterval);
        Assert.True(b.ReplaceAllowedIps);
        Assert.Equal([new UapiAllowedIpChange(IPNetwork.Parse("10.200.0.0/24"), false),
            new UapiAllowedIpChange(IPNetwork.Parse("fd00::1/128"), true)], b.AllowedIps);
        Assert.True(r.Peers[1].Remove);
    }

    [Fact]
    public void IPv6EndpointInBrackets()
    {
        var p = Parse("public_key=" + HexA, "endpoint=[fd00::2]:51820");
        Assert.Equal(new IPEndPoint(IPAddress.Parse("fd00::2"), 51820), p.Request.Peers[0].Endpoint);
    }

    [Fact]
    public void ReplaceAllowedIpsDropsEarlierLinesOfTheSameRequest()
    {
        var p = Parse("public_key=" + HexA, "allowed_ip=10.0.0.1/32", "replace_allowed_ips=true", "allowed_ip=10.0.0.2/32");
        Assert.Equal([new UapiAllowedIpChange(IPNetwork.Parse("10.0.0.2/32"), false)], p.Request.Peers[0].AllowedIps);
    }

    [Theory]
    [InlineData(UapiErrno.Invalid, "fwmark=0x1234")]
    [InlineData(UapiErrno.Invalid, "fwmark=4294967296")]
    [InlineData(UapiErrno.Invalid, "fwmark=")]
    [InlineData(UapiErrno.Invalid, "listen_port=65536")]
    [InlineData(UapiErrno.Invalid, "listen_port=-1")]
    [InlineData(UapiErrno.Invalid, "listen_port=+1")]
    [InlineData(UapiErrno.Invalid, "private_key=abcd")]
    [InlineData(UapiErrno.Invalid, "private_key=" + HexA + "00")]
    [InlineData(UapiErrno.Invalid, "private_key=g1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1")]
    [InlineData(UapiErrno.Invalid, "replace_peers=false")]
    [InlineData(UapiErrno.Invalid, "endpoint=10.0.0.1:1")]
    [InlineData(UapiErrno.Invalid, "allowed_ip=10.0.0.0/8")]
    [InlineData(UapiErrno.Invalid, "Private_Key=" + HexA)]
    [InlineData(UapiErrno.Invalid, "bogus=1")]
    [InlineData(UapiErrno.Invalid, "public_key=" + HexA + "x")]
    [InlineData(UapiErrno.Invalid, "no equals sign")]
    public void BadDeviceLine(int errno, string line)
    {
        var p = Parse(line);
        Assert.Equal(errno, p.Errno);
        Assert.NotNull(p.Problem);
    }

    [Theory]
    [InlineData("update_only=1")]
    [InlineData("remove=yes")]
    [InlineData("preshared_key=00")]
    [InlineData("endpoint=10.0.0.1")]
    [InlineData("endpoint=10.0.0.1:0")]
    [InlineData("endpoint=10.0.0.1:65536")]
    [InlineData("endpoint=host.example:51820")]
    [InlineData("endpoint=fd00::1:51820")]
    [InlineData("endpoint=[fd00::1]51820")]
    [InlineData("endpoint=[10.0.0.1]:51820")]
    [InlineData("endpoint=")]
    [InlineData("persistent_keepalive_interval=65536")]
    [InlineData("persistent_keepalive_interval=off")]
    [InlineData("replace_allowed_ips=TRUE")]
    [InlineData("allowed_ip=10.0.0.1")]
    [InlineData("allowed_ip=10.0.0.1/33")]
    [InlineData("allowed_ip=--10.0.0.1/32")]
    [InlineData("allowed_ip=")]
    [InlineData("protocol_version=2")]
    [InlineData("listen_port=1")]
    [InlineData("private_key=" + HexA)]
    public void BadPeerLine(string line)
    {
        var p = Parse("public_key=" + HexA, line);
        Assert.Equal(UapiErrno.Invalid, p.Errno);
    }

    [Fact]
    public void LinesAfterAnErrorAreIgnored()
    {
        var p = Parse("fwmark=x", "public_key=" + HexA, "allowed_ip=10.0.0.0/8");
        Assert.Equal(UapiErrno.Invalid, p.Errno);
        Assert.Contains("fwmark", p.Problem);
    }

    [Fact]
    public void DisposeZeroesKeys()
    {
        var p = Parse("private_key=" + HexA, "public_key=" + HexB, "preshared_key=" + HexA);
        var priv = p.Request.PrivateKey!;
        var psk = p.Request.Peers[0].PresharedKey!;
        p.Request.Dispose();
        Assert.All(priv, b => Assert.Equal(0, b));
        Assert.All(psk, b => Assert.Equal(0, b));
    }

    [Fact]
    public void ProblemNeverEchoesUnprintableInput()
    {
        var p = Parse("k\u0007ey=1");
        Assert.DoesNotContain('\u0007', p.Problem!);
    }
}
