using System.Text.RegularExpressions;
using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// tunneld carrying real traffic (issue 3's integration tests): against wireguard-go and against
/// itself, in two namespaces joined by a veth pair (10.99.0.1 | 10.99.0.2), inside the tunnel
/// 10.200.0.1 / fd20::1 (side A) and 10.200.0.2 / fd20::2 (side B). Every test makes and removes
/// its own namespaces, processes, sockets and files.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class TunneldTrafficTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-traffic-").FullName;
    private readonly KeyPair _a = KeyPair.Create();
    private readonly KeyPair _b = KeyPair.Create();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ITestOutputHelper? Output => TestContext.Current.TestOutputHelper;

    private string TunneldConfig(KeyPair self, int port, string addresses, KeyPair peer, string allowedIps,
        string? endpoint, string? presharedKey = null, int keepalive = 0, uint fwmark = 0) => $"""
        [Interface]
        PrivateKey = {self.Private}
        ListenPort = {port}
        Address = {addresses}
        FwMark = {fwmark}

        [Peer]
        PublicKey = {peer.Public}
        AllowedIPs = {allowedIps}
        {(endpoint is null ? "" : "Endpoint = " + endpoint)}
        {(presharedKey is null ? "" : "PresharedKey = " + presharedKey)}
        {(keepalive == 0 ? "" : "PersistentKeepalive = " + keepalive)}
        """;

    /// <summary>Side A: tunneld at 10.99.0.1:51820 with peer B at 10.99.0.2:51821.</summary>
    private (string Name, BackgroundProcess Daemon) StartTunneldA(NetNs ns, string? presharedKey = null,
        int keepalive = 0, uint fwmark = 0)
    {
        var name = NetNs.UniqueInterfaceName("td");
        var daemon = StartTunneld(ns, _dir, name, TunneldConfig(_a, 51820, "10.200.0.1/24, fd20::1/64", _b,
            "10.200.0.2/32, fd20::2/128", "10.99.0.2:51821", presharedKey, keepalive, fwmark));
        return (name, daemon);
    }

    /// <summary>Side B: wireguard-go listening on <paramref name="port"/> with peer A at 10.99.0.1:51820.</summary>
    private (string Name, BackgroundProcess Daemon) StartWireguardGoB(NetNs ns, string? presharedKey = null,
        int port = 51821, string? name = null)
    {
        name ??= NetNs.UniqueInterfaceName("wg");
        var daemon = StartWireguardGo(ns, name);
        ConfigureWg(ns, name, port, _b, _a.Public, "10.200.0.1/32,fd20::1/128", "10.99.0.1:51820",
            ["10.200.0.2/24", "fd20::2/64"], presharedKey);
        return (name, daemon);
    }

    private static (NetNs A, NetNs B) Namespaces() => NetNs.CreateLinkedPair("tda", "tdb");

    private void AssertNoKeysIn(string output)
    {
        foreach (var secret in new[] { _a.Private, _b.Private })
            Assert.DoesNotContain(secret, output);
    }

    [Fact]
    public void PingsWireguardGoBothWaysOverIPv4AndIPv6AndCountsBytesLikeIt()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        var (tunneld, daemon) = StartTunneldA(a);
        var (wgGo, _) = StartWireguardGoB(b);

        Ping(a, "10.200.0.2", daemon: daemon);
        Ping(b, "10.200.0.1", daemon: daemon);
        Ping(a, "fd20::2", daemon: daemon);
        Ping(b, "fd20::1", daemon: daemon);

        // A burst, then the counters: what one side sent the other received, byte for byte (both
        // count whole WireGuard messages as the kernel does). Poll until in-flight packets land.
        Check(a.Run("ping", "-c", "200", "-f", "-W", "2", "10.200.0.2"));
        Check(b.Run("ping", "-c", "200", "-f", "-s", "1000", "-W", "2", "10.200.0.1"));
        ulong tx = 0, rx = 0, tx2 = 0, rx2 = 0;
        Eventually(() =>
        {
            tx = TxBytes(a, tunneld);
            rx2 = RxBytes(a, tunneld);
            rx = RxBytes(b, wgGo);
            tx2 = TxBytes(b, wgGo);
            return tx == rx && tx2 == rx2;
        }, TimeSpan.FromSeconds(20), () => $"tunneld tx {tx} vs wireguard-go rx {rx}; wireguard-go tx {tx2} vs tunneld rx {rx2}");
        Assert.True(tx > 200 * 100, $"tx {tx}");
        Assert.True(rx2 > 200 * 1000, $"rx {rx2}");
        Output?.WriteLine($"tunneld tx {tx} = wireguard-go rx {rx}; wireguard-go tx {tx2} = tunneld rx {rx2}");
        Eventually(() => daemon.Output.Contains("handshake completed, endpoint 10.99.0.2:51821"), TimeSpan.FromSeconds(5),
            () => $"no handshake log line:\n{daemon.Output}");
        AssertNoKeysIn(daemon.Output);
    }

    [Fact]
    public void TunneldPairPingsBothWaysAndCarries50MegabytesOfTcp()
    {
        RootCollection.RequireRootAnd("ip", "ping", "iperf3");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        var (_, daemonA) = StartTunneldA(a);
        var nameB = NetNs.UniqueInterfaceName("td");
        var daemonB = StartTunneld(b, _dir, nameB, TunneldConfig(_b, 51821, "10.200.0.2/24, fd20::2/64", _a,
            "10.200.0.1/32, fd20::1/128", "10.99.0.1:51820"));

        Ping(a, "10.200.0.2", daemon: daemonA);
        Ping(b, "10.200.0.1", daemon: daemonB);
        Ping(a, "fd20::2", daemon: daemonA);

        var server = b.Start("iperf3", "-s", "-1", "-B", "10.200.0.2");
        Thread.Sleep(500);
        var client = ProcessRunner.Run(["ip", "netns", "exec", a.Name, "iperf3", "-c", "10.200.0.2", "-n", "50M"],
            timeoutMs: 180_000);
        Assert.True(client.ExitCode == 0, $"{client}\nserver: {server.Output}\nA: {daemonA.Output}\nB: {daemonB.Output}");
        Output?.WriteLine(client.Output);
        // The sender line counts what TCP delivered and had acknowledged: all 50 MiB. (The receiver
        // line is the server's own interval, which iperf3 may cut short at the end.)
        var sender = client.Output.Split('\n').Last(l => l.Contains("sender"));
        var sent = Regex.Match(sender, @"([\d.]+) MBytes");
        Assert.True(sent.Success && double.Parse(sent.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 50,
            client.Output);
        Assert.True(server.WaitForExit(TimeSpan.FromSeconds(20)), server.Output);

        // No allocation per packet: over tens of thousands of packets each way, what the data-path
        // threads allocated (handshakes, first-use pools, the runtime's own tiered-JIT work on these
        // threads, which grows when the machine is busy) stays below 8 bytes per packet on
        // average, less than the smallest object (24 bytes) that a per-packet allocation would cost.
        foreach (var daemon in new[] { daemonA, daemonB })
        {
            Assert.True(daemon.Terminate(TimeSpan.FromSeconds(20)), daemon.Output);
            var stats = Regex.Match(daemon.Output,
                @"tun-read (\d+) packets, (\d+) bytes allocated; udp-receive (\d+) datagrams, (\d+) bytes allocated; \d+ TUN reads, \d+ UDP reads");
            Assert.True(stats.Success, daemon.Output);
            Output?.WriteLine(stats.Value);
            var packets = long.Parse(stats.Groups[1].Value) + long.Parse(stats.Groups[3].Value);
            var allocated = long.Parse(stats.Groups[2].Value) + long.Parse(stats.Groups[4].Value);
            Assert.True(packets > 30_000, stats.Value);
            Assert.True(allocated < 8 * packets, $"{allocated} bytes allocated over {packets} packets: {stats.Value}");
        }
        AssertNoKeysIn(daemonA.Output + daemonB.Output);
    }

    /// <summary>
    /// The offloads rewrite TCP on the way: TSO packets cut up on send, runs of segments joined
    /// into one GSO write on receive, with checksums the kernel then trusts. A mistake there would
    /// corrupt the stream without TCP noticing, so compare what arrives byte for byte, over IPv4
    /// and IPv6, with wireguard-go at the other end as well (it sends segments we join and takes
    /// the datagrams our GSO sends make).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TcpStreamsArriveIntactOverIPv4AndIPv6(bool tunneldAtBothEnds)
    {
        RootCollection.RequireRootAnd("ip", "ping", "socat", "wireguard-go", "wg");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        var (_, daemonA) = StartTunneldA(a);
        BackgroundProcess daemonB;
        if (tunneldAtBothEnds)
            daemonB = StartTunneld(b, _dir, NetNs.UniqueInterfaceName("td"), TunneldConfig(_b, 51821,
                "10.200.0.2/24, fd20::2/64", _a, "10.200.0.1/32, fd20::1/128", "10.99.0.1:51820"));
        else
            daemonB = StartWireguardGoB(b).Daemon;
        Ping(a, "10.200.0.2", daemon: daemonA);
        Ping(a, "fd20::2", daemon: daemonA);

        var data = new byte[24 << 20];
        System.Security.Cryptography.RandomNumberGenerator.Fill(data);
        var sent = Path.Combine(_dir, "sent");
        File.WriteAllBytes(sent, data);
        var expected = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(data));
        var port = 5001;
        foreach (var (from, to, listen, connect) in new[]
                 {
                     (a, b, "TCP4-LISTEN:{0},bind=10.200.0.2", "TCP4:10.200.0.2:{0}"),
                     (a, b, "TCP6-LISTEN:{0},bind=[fd20::2]", "TCP6:[fd20::2]:{0}"),
                     (b, a, "TCP4-LISTEN:{0},bind=10.200.0.1", "TCP4:10.200.0.1:{0}"),
                     (b, a, "TCP6-LISTEN:{0},bind=[fd20::1]", "TCP6:[fd20::1]:{0}"),
                 })
        {
            port++;
            var received = Path.Combine(_dir, $"received-{port}");
            using var server = to.Start("socat", "-u", string.Format(listen, port), $"CREATE:{received}");
            CommandResult client = null!;
            Eventually(() =>
            {
                client = ProcessRunner.Run(["ip", "netns", "exec", from.Name, "socat", "-u", $"FILE:{sent}",
                    string.Format(connect, port)], timeoutMs: 120_000);
                return client.ExitCode == 0;
            }, TimeSpan.FromSeconds(10), () => $"{client}\nserver: {server.Output}");
            Assert.True(server.WaitForExit(TimeSpan.FromSeconds(60)), server.Output);
            var hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(received)));
            Assert.True(expected == hash, $"{connect}: {new FileInfo(received).Length} bytes arrived, not the {data.Length} sent\nA: {daemonA.Output}\nB: {daemonB.Output}");
        }
    }

    [Fact]
    public void WgShowSetAndShowconfWorkAgainstTunneld()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go", "python3");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        // A mark with no policy rule that uses it: it only has to be set, shown and set again.
        var (tunneld, daemon) = StartTunneldA(a, fwmark: 0x1234);
        var (wgGo, _) = StartWireguardGoB(b);
        Ping(a, "10.200.0.2", daemon: daemon);

        var show = a.Check("wg", "show", tunneld);
        Assert.Contains($"peer: {_b.Public}", show);
        Assert.Contains("latest handshake:", show);
        Assert.Contains("transfer:", show);
        var peer = PeerDump(a, tunneld);
        Assert.NotEqual("0", peer[4]);
        Assert.NotEqual("0", peer[5]);
        Assert.NotEqual("0", peer[6]);

        // A new prefix on B's side is unreachable until wg set adds it to B's allowed IPs here (the
        // route is the user's job, as with kernel WireGuard: wg set never touches routes).
        b.Check("ip", "addr", "add", "10.201.0.5/32", "dev", wgGo);
        a.Check("ip", "route", "add", "10.201.0.0/24", "dev", tunneld);
        Assert.NotEqual(0, a.Run("ping", "-c", "1", "-W", "2", "10.201.0.5").ExitCode);
        Check(a.Run("wg", "set", tunneld, "peer", _b.Public, "allowed-ips", "10.200.0.2/32,fd20::2/128,10.201.0.0/24"));
        Assert.Contains("10.201.0.0/24", PeerDump(a, tunneld)[3]);
        Ping(a, "10.201.0.5", daemon: daemon);

        // showconf -> setconf -> showconf is a fixed point.
        var conf = a.Check("wg", "showconf", tunneld);
        Assert.Contains("ListenPort = 51820", conf);
        Assert.Contains("FwMark = 0x1234", conf);
        Assert.Contains("10.201.0.0/24", conf);
        var confPath = Path.Combine(_dir, "showconf.conf");
        File.WriteAllText(confPath, conf);
        var setconf = a.Run("wg", "setconf", tunneld, confPath);
        Assert.True(setconf.ExitCode == 0, $"{setconf}\n{daemon.Output}");
        Assert.Equal(conf, a.Check("wg", "showconf", tunneld));
        Ping(a, "10.200.0.2", daemon: daemon);

        // A bad set changes nothing (errno -22: "Invalid argument").
        var bad = a.Run("wg", "set", tunneld, "peer", _b.Public, "endpoint", "10.99.0.2:0");
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Equal(conf, a.Check("wg", "showconf", tunneld));

        // listen-port: a taken port is refused (-98) and changes nothing; a free one moves the
        // socket, and wireguard-go follows tunneld to it (roaming) when tunneld next speaks.
        var holder = a.Start("python3", "-c",
            "import socket,time\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('::',51830))\n" +
            "print('bound',flush=True)\ntime.sleep(120)");
        Eventually(() => holder.Output.Contains("bound"), TimeSpan.FromSeconds(10), () => holder.Output);
        var taken = a.Run("wg", "set", tunneld, "listen-port", "51830");
        Assert.NotEqual(0, taken.ExitCode);
        Assert.Contains("Address already in use", taken.Error);
        Assert.Equal(conf, a.Check("wg", "showconf", tunneld));
        Check(a.Run("wg", "set", tunneld, "listen-port", "51831"));
        Assert.Equal("51831", a.Check("wg", "show", tunneld, "listen-port").Trim());
        Ping(a, "10.200.0.2", daemon: daemon);
        Assert.Equal("10.99.0.1:51831", PeerDump(b, wgGo)[2]);
        AssertNoKeysIn(daemon.Output);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PresharedKeyMustMatchOnBothSides(bool match)
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        var psk = ProcessRunner.Check(["wg", "genpsk"]).Trim();
        var otherPsk = match ? psk : ProcessRunner.Check(["wg", "genpsk"]).Trim();
        var (tunneld, daemon) = StartTunneldA(a, presharedKey: psk);
        var (wgGo, _) = StartWireguardGoB(b, presharedKey: otherPsk);
        Assert.Equal(psk, a.Check("wg", "show", tunneld, "preshared-keys").Split('\t')[1].Trim());

        if (match)
        {
            Ping(a, "10.200.0.2", daemon: daemon);
            Ping(b, "10.200.0.1", daemon: daemon);
            Assert.NotEqual(0, LatestHandshake(a, tunneld));
        }
        else
        {
            // Whoever initiates, the other's response cannot be opened: no session either way.
            Assert.NotEqual(0, a.Run("ping", "-c", "3", "-W", "2", "10.200.0.2").ExitCode);
            Assert.NotEqual(0, b.Run("ping", "-c", "2", "-W", "2", "10.200.0.1").ExitCode);
            Assert.Equal(0, LatestHandshake(a, tunneld));
            Assert.Equal(0, LatestHandshake(b, wgGo));
            // wireguard-go consumed tunneld's initiations (the PSK enters only the response), so the
            // two did talk: the failure is the key, not the network.
            Assert.True(RxBytes(b, wgGo) > 0, "wireguard-go never heard from tunneld: the test proves nothing");
        }
        Assert.DoesNotContain(psk, daemon.Output);
        AssertNoKeysIn(daemon.Output);
    }

    [Fact]
    public void PersistentKeepaliveIsSentAndARestartedPeerOnANewPortIsFollowed()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        var (tunneld, daemon) = StartTunneldA(a, keepalive: 1);
        var (wgGo, goB) = StartWireguardGoB(b);

        // Keepalive is on from the start: the handshake and then keepalives (32-byte transport
        // messages with no payload) arrive with no traffic at all.
        Eventually(() => LatestHandshake(b, wgGo) != 0, TimeSpan.FromSeconds(15),
            () => $"no handshake from the persistent keepalive\n{daemon.Output}");
        Thread.Sleep(1500);
        var before = RxBytes(b, wgGo);
        var packetsBefore = VethRxPackets(b);
        Thread.Sleep(4000);
        var received = RxBytes(b, wgGo) - before;
        var packets = VethRxPackets(b) - packetsBefore;
        Output?.WriteLine($"idle 4 s: wireguard-go received {received} bytes, veth-b {packets} packets");
        Assert.True(received >= 3 * 32, $"only {received} bytes of keepalive in 4 s");
        Assert.True(received % 32 == 0, $"{received} bytes is not a whole number of keepalives");
        Assert.True(packets >= 3, $"only {packets} packets on the wire");

        // wireguard-go dies and comes back on another port. It knows tunneld's endpoint, so it
        // initiates; tunneld must answer, and follow the new port for its own traffic.
        Assert.True(goB.Terminate(TimeSpan.FromSeconds(10)), "wireguard-go ignored SIGTERM");
        var (wgGo2, _) = StartWireguardGoB(b, port: 51822, name: wgGo);
        Ping(b, "10.200.0.1", daemon: daemon);
        Ping(a, "10.200.0.2", daemon: daemon);
        Assert.Equal("10.99.0.2:51822", PeerDump(a, tunneld)[2]);
        Assert.NotEqual(0, LatestHandshake(b, wgGo2));
        AssertNoKeysIn(daemon.Output);
    }

    private static ulong VethRxPackets(NetNs ns) =>
        ulong.Parse(ns.Check("cat", "/sys/class/net/veth-b/statistics/rx_packets").Trim());
}
