using System.Net;
using Tunnel.Config;

using Xunit;

namespace Tunnel.Tests.Config;

public sealed class ConfigParserTests
{
    private static readonly string KeyA = Convert.ToBase64String(Enumerable.Repeat((byte)0xA1, 32).ToArray());
    private static readonly string KeyB = Convert.ToBase64String(Enumerable.Repeat((byte)0xB2, 32).ToArray());
    private static readonly string KeyC = Convert.ToBase64String(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    private static IPAddress[] FakeDns(string host) => host switch
    {
        "peer.example" => [IPAddress.Parse("2001:db8::7"), IPAddress.Parse("192.0.2.7")],
        "v6only.example" => [IPAddress.Parse("2001:db8::8")],
        _ => throw new System.Net.Sockets.SocketException(11001),
    };

    private static TunnelConfig Parse(string text) => new ConfigParser(FakeDns).Parse(text, "wg9.conf");

    [Fact]
    public void FullFileParses()
    {
        var text = $"""
            # a comment line
            [Interface]
            PrivateKey = {KeyA}   # trailing comment
            ListenPort = 51820
            Address = 10.0.0.1/24, fd00::1/64
            Address = 10.1.0.1
            MTU = 1380
            FwMark = off

            [Peer]
            PublicKey = {KeyB}
            PresharedKey = {KeyC}
            AllowedIPs = 10.0.0.2/32, 192.168.7.9/24
            AllowedIPs = fd00::2/128
            Endpoint = 192.0.2.1:51821
            PersistentKeepalive = 25

            [peer]
            publickey={KeyC}
            endpoint=[2001:db8::1]:443
            persistentkeepalive = off
            """;
        using var config = Parse(text);
        Assert.Equal("wg9.conf", config.FileName);
        Assert.Equal(Enumerable.Repeat((byte)0xA1, 32), config.Interface.PrivateKey);
        Assert.Equal(51820, config.Interface.ListenPort);
        Assert.Equal(1380, config.Interface.Mtu);
        Assert.Equal(["10.0.0.1/24", "fd00::1/64", "10.1.0.1/32"], config.Interface.Addresses.Select(a => a.ToString()));
        Assert.Equal(2, config.Peers.Count);
        var p = config.Peers[0];
        Assert.Equal(Enumerable.Repeat((byte)0xB2, 32), p.PublicKey);
        Assert.Equal(Enumerable.Range(0, 32).Select(i => (byte)i), p.PresharedKey!);
        // Host bits of an allowed IP are masked, as wg does.
        Assert.Equal(["10.0.0.2/32", "192.168.7.0/24", "fd00::2/128"], p.AllowedIps.Select(a => a.ToString()));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 51821), p.Endpoint);
        Assert.Equal(25, p.PersistentKeepalive);
        Assert.Equal(10, p.Line);
        var q = config.Peers[1];
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::1"), 443), q.Endpoint);
        Assert.Equal(0, q.PersistentKeepalive);
        Assert.Null(q.PresharedKey);
        Assert.Empty(q.AllowedIps);
        Assert.Empty(config.Warnings);
    }

    [Fact]
    public void DefaultsWhenOmitted()
    {
        using var config = Parse($"[Interface]\nPrivateKey={KeyA}\n");
        Assert.Equal(InterfaceConfig.DefaultMtu, config.Interface.Mtu);
        Assert.Equal(0, config.Interface.ListenPort);
        Assert.Empty(config.Interface.Addresses);
        Assert.Empty(config.Peers);
    }

    [Fact]
    public void HostNamesResolveAtLoadPreferringIPv4()
    {
        using var config = Parse($"[Interface]\nPrivateKey={KeyA}\n[Peer]\nPublicKey={KeyB}\nEndpoint=peer.example:51820\n" +
                                 $"[Peer]\nPublicKey={KeyC}\nEndpoint=v6only.example:1\n");
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.0.2.7"), 51820), config.Peers[0].Endpoint);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::8"), 1), config.Peers[1].Endpoint);
    }

    [Fact]
    public void WgQuickOptionsAreWarnedAboutNotRejected()
    {
        using var config = Parse($"[Interface]\nPrivateKey={KeyA}\nDNS = 1.1.1.1\nPostUp = iptables -A FORWARD\nTable=off\nSaveConfig=true\n");
        Assert.Equal(4, config.Warnings.Count);
        Assert.StartsWith("wg9.conf:3: DNS", config.Warnings[0]);
        Assert.StartsWith("wg9.conf:4: PostUp", config.Warnings[1]);
    }

    [Fact]
    public void CrLfLineEndingsAreAccepted()
    {
        using var config = Parse($"[Interface]\r\nPrivateKey = {KeyA}\r\nListenPort = 7\r\n");
        Assert.Equal(7, config.Interface.ListenPort);
    }

    public static TheoryData<string, int, string> BadFiles() => new()
    {
        { "PrivateKey = " + KeyA, 1, "before any [Interface]" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Interfaces]", 3, "unknown section [Interfaces]" },
        { "[Interface\nPrivateKey = " + KeyA, 1, "malformed section header" },
        { "[Interface]\nPrivateKey = abc", 2, "PrivateKey is not a base64 32-byte key" },
        { "[Interface]\nPrivateKey = " + KeyA[..43] + "A", 2, "PrivateKey is not a base64" },
        { "[Interface]\nPrivateKey = " + KeyA + "=", 2, "PrivateKey is not a base64" },
        { "[Interface]\nPrivateKey = " + KeyA.Replace('o', '!').Replace('K', '!'), 2, "PrivateKey is not a base64" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nPrivateKey = " + KeyB, 3, "PrivateKey given twice" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nListenPort = 65536", 3, "ListenPort must be a number from 0 to 65535" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nListenPort = -1", 3, "ListenPort must be" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nListenPort = 0x50", 3, "ListenPort must be" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nListenPort", 3, "expected 'Key = Value'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n= 5", 3, "expected 'Key = Value'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nMTU = 100", 3, "MTU must be a number from 576" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nMTU = 1000\nAddress = fd00::1/64", 3, "below 1280" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nAddress = 10.0.0.300/24", 3, "Address '10.0.0.300/24'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nAddress = 10.0.0.1/33", 3, "Address '10.0.0.1/33'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nAddress = fd00::1/129", 3, "Address 'fd00::1/129'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nAddress = 10.0.0.1/24,,10.0.0.2", 3, "Address has an empty entry" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nAddress =", 3, "Address has an empty entry" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nAddress = 10", 3, "Address '10'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\nColour = blue", 3, "unknown key 'Colour' in [Interface]" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Interface]", 3, "second [Interface] section (the first is on line 1)" },
        { "[Interface]\nListenPort = 1", 1, "[Interface] has no PrivateKey" },
        { "[Peer]\nPublicKey = " + KeyB, 0, "no [Interface] section" },
        { "", 0, "no [Interface] section" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n\n[Peer]\nAllowedIPs = 10.0.0.0/8", 4, "[Peer] has no PublicKey" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\n[Peer]\nPublicKey = " + KeyB, 6, "PublicKey repeats the peer of line 3" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nPresharedKey = short", 5, "PresharedKey is not a base64" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nAllowedIPs = 10.0.0.0/8, 300.0.0.0/8", 5, "AllowedIPs entry '300.0.0.0/8'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nAllowedIPs = 10.0.0.0/", 5, "AllowedIPs entry '10.0.0.0/'" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nAllowedIPs = fe80::1%eth0/64", 5, "AllowedIPs entry" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = 192.0.2.1", 5, "Endpoint '192.0.2.1' must be host:port" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = 192.0.2.1:0", 5, "Endpoint port must be a number from 1 to 65535" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = 192.0.2.1:70000", 5, "Endpoint port" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = 2001:db8::1:51820", 5, "write an IPv6 address as [address]:port" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = [2001:db8::1]51820", 5, "must be [IPv6]:port" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = [10.0.0.1]:51820", 5, "is not an IPv6 address" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = nowhere.invalid:1", 5, "Endpoint host 'nowhere.invalid' does not resolve" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nPersistentKeepalive = 65536", 5, "PersistentKeepalive must be" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nPersistentKeepalive = sometimes", 5, "PersistentKeepalive must be" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nDNS = 1.1.1.1", 5, "unknown key 'DNS' in [Peer]" },
        { "[Interface]\nPrivateKey = " + KeyA + "\n[Peer]\nPublicKey = " + KeyB + "\nEndpoint = 192.0.2.1:1\nEndpoint = 192.0.2.1:2", 6, "Endpoint given twice" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadFileNamesLineAndProblem(string text, int line, string problem)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(text));
        Assert.Equal("wg9.conf", e.FileName);
        Assert.Equal(line, e.Line);
        Assert.Contains(problem, e.Problem);
        Assert.StartsWith($"wg9.conf:{line}: ", e.Message);
    }

    [Fact]
    public void ErrorMessagesNeverContainTheKey()
    {
        var e = Assert.Throws<ConfigException>(() =>
            Parse("[Interface]\nPrivateKey = " + KeyA + "\nPrivateKey = " + KeyA[..40]));
        Assert.DoesNotContain(KeyA[..40], e.Message);
    }

    [Fact]
    public void MissingFileIsAConfigError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"no-such-{Guid.NewGuid():N}.conf");
        var e = Assert.Throws<ConfigException>(() => new ConfigParser(FakeDns).ParseFile(path));
        Assert.Equal(0, e.Line);
        Assert.Contains("cannot read file", e.Problem);
    }

    [Fact]
    public void DisposeZeroesKeys()
    {
        var config = Parse($"[Interface]\nPrivateKey={KeyA}\n[Peer]\nPublicKey={KeyB}\nPresharedKey={KeyC}\n");
        var priv = config.Interface.PrivateKey;
        var psk = config.Peers[0].PresharedKey!;
        config.Dispose();
        Assert.All(priv, b => Assert.Equal(0, b));
        Assert.All(psk, b => Assert.Equal(0, b));
    }
}
