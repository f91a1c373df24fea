using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// tunneld as wg-quick runs it (<c>WG_QUICK_USERSPACE_IMPLEMENTATION=tunneld wg-quick up FILE</c>,
/// which runs <c>tunneld IFNAME</c> and then <c>wg setconf</c> at once): namespace A runs wg-quick
/// and tunneld, namespace B wireguard-go, joined by a veth pair (10.99.0.1 | 10.99.0.2); inside the
/// tunnel 10.200.0.1 and 10.200.0.2. The daemon goes to the background, so the test finds it by
/// its socket and stops it by pid if the test fails.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class WgQuickTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-wgquick-").FullName;
    private readonly KeyPair _a = KeyPair.Create();
    private readonly KeyPair _b = KeyPair.Create();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteConfig(string name, string allowedIps)
    {
        var path = Path.Combine(_dir, name + ".conf");
        File.WriteAllText(path, $"""
            [Interface]
            PrivateKey = {_a.Private}
            ListenPort = 51820
            Address = 10.200.0.1/24

            [Peer]
            PublicKey = {_b.Public}
            AllowedIPs = {allowedIps}
            Endpoint = 10.99.0.2:51821
            """);
        if (OperatingSystem.IsLinux())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static CommandResult WgQuick(NetNs ns, params string[] args) =>
        ns.Run(["env", $"WG_QUICK_USERSPACE_IMPLEMENTATION={TunneldBinary.Path}", "wg-quick", .. args]);

    /// <summary><c>wg-quick up</c>; the pid of the tunneld it left in the background.</summary>
    private static int Up(NetNs a, string path, string socket)
    {
        var up = WgQuick(a, "up", path);
        Assert.True(up.ExitCode == 0, up.ToString());
        var pid = DaemonProcess.ServingPid(a, socket);
        Assert.True(DaemonProcess.IsAlive(pid));
        return pid;
    }

    /// <summary>Namespace A (tunneld under wg-quick, its config for <paramref name="allowedIps"/>)
    /// linked to B (wireguard-go), for <paramref name="body"/>; whatever happens, the link goes and
    /// the daemon with it.</summary>
    private void WithWgQuickPair(string allowedIps, Action<WgQuickRun> body)
    {
        var (a, b) = NetNs.CreateLinkedPair("wqa", "wqb");
        using var _ = a;
        using var __ = b;
        StartPeerB(b);
        var name = NetNs.UniqueInterfaceName("wq");
        var run = new WgQuickRun(a, b, name, WriteConfig(name, allowedIps), SocketPath(name));
        a.RemoveOnDispose(run.Socket);
        try
        {
            body(run);
        }
        finally
        {
            // The daemon lives in namespace A and so keeps it (and its interface) alive: deleting
            // the link is what ends a daemon this test could not find.
            a.Run("ip", "link", "del", name);
            DaemonProcess.Stop(run.Pid);
        }
    }

    private sealed record WgQuickRun(NetNs A, NetNs B, string Name, string Path, string Socket)
    {
        /// <summary>The tunneld that the last <c>wg-quick up</c> left running (0: none yet).</summary>
        public int Pid { get; set; }
    }

    private void StartPeerB(NetNs b)
    {
        var name = NetNs.UniqueInterfaceName("wg");
        StartWireguardGo(b, name);
        ConfigureWg(b, name, 51821, _b, _a.Public, "10.200.0.1/32", "10.99.0.1:51820", ["10.200.0.2/24"]);
    }

    [Fact]
    public void UpPingSaveDownAgainstWireguardGoAndTheDaemonIsGoneWithin3Seconds()
    {
        RootCollection.RequireRootAnd("ip", "ss", "ping", "wg", "wg-quick", "wireguard-go");
        WithWgQuickPair("10.200.0.2/32", run =>
        {
            var (a, b, name, path, socket) = (run.A, run.B, run.Name, run.Path, run.Socket);
            run.Pid = Up(a, path, socket);
            Ping(a, "10.200.0.2");
            Ping(b, "10.200.0.1");

            // wg-quick save writes the running configuration back (wg showconf plus its own keys).
            Check(a.Run("wg", "set", name, "peer", _b.Public, "persistent-keepalive", "25"));
            Check(WgQuick(a, "save", path));
            var saved = File.ReadAllText(path);
            Assert.Contains("PersistentKeepalive = 25", saved);
            Assert.Contains("Address = 10.200.0.1/24", saved);
            Assert.Contains($"PublicKey = {_b.Public}", saved);

            // wg-quick down only deletes the link: the daemon must notice and exit by itself.
            var down = WgQuick(a, "down", path);
            Assert.True(down.ExitCode == 0, down.ToString());
            Assert.True(DaemonProcess.WaitGone(run.Pid, TimeSpan.FromSeconds(3)), $"tunneld (pid {run.Pid}) still running 3 s after wg-quick down");
            Assert.False(File.Exists(socket), "UAPI socket left behind");

            // And up works again at once (nothing stale blocks it).
            run.Pid = Up(a, path, socket);
            Check(WgQuick(a, "down", path));
            Assert.True(DaemonProcess.WaitGone(run.Pid, TimeSpan.FromSeconds(3)));
        });
    }

    [Fact]
    public void DefaultRouteThroughWgQuickFwmarkPolicyRouting()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wg-quick", "wireguard-go", "ss", "nft", "sysctl");
        WithWgQuickPair("0.0.0.0/0", run =>
        {
            var (a, _, name, path, socket) = (run.A, run.B, run.Name, run.Path, run.Socket);
            run.Pid = Up(a, path, socket);
            // wg-quick routes everything into the tunnel except packets marked 51820, which it has
            // tunneld put on its own UDP socket: without SO_MARK the handshake would loop back in.
            Assert.Equal("51820", a.Check("wg", "show", name, "fwmark").Trim() is var mark && mark.StartsWith("0x", StringComparison.Ordinal)
                ? Convert.ToUInt32(mark, 16).ToString() : mark);
            Assert.Contains("not from all fwmark 0xca6c lookup 51820", a.Check("ip", "rule"));
            Ping(a, "10.200.0.2");
            Assert.NotEqual(0, LatestHandshake(a, name));

            Check(WgQuick(a, "down", path));
            Assert.True(DaemonProcess.WaitGone(run.Pid, TimeSpan.FromSeconds(3)));
            Assert.DoesNotContain("51820", a.Check("ip", "rule"));
        });
    }
}
