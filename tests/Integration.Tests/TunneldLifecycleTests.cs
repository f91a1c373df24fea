using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// How <c>tunneld up</c> lives and ends: the interface deleted under it, SIGHUP reloading the file
/// as <c>wg syncconf</c> would (a bad file changing nothing), SIGUSR1 / SIGUSR2 ignored.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class TunneldLifecycleTests : IDisposable
{
    private const int SIGHUP = 1;
    private const int SIGUSR1 = 10;
    private const int SIGUSR2 = 12;

    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-life-").FullName;
    private readonly KeyPair _self = KeyPair.Create();
    private readonly KeyPair _peer1 = KeyPair.Create();
    private readonly KeyPair _peer2 = KeyPair.Create();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Config(int port, string peers) => $"""
        [Interface]
        PrivateKey = {_self.Private}
        ListenPort = {port}
        Address = 10.60.0.1/24

        {peers}
        """;

    private string Peer1(string allowedIps) => $"[Peer]\nPublicKey = {_peer1.Public}\nAllowedIPs = {allowedIps}\n";

    private static string[] Dump(NetNs ns, string name) =>
        ns.Check("wg", "show", name, "dump").Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public void DeletingTheInterfaceStopsTheDaemonCleanlyWithoutSpinning()
    {
        RootCollection.RequireRootAnd("ip", "wg");
        using var ns = NetNs.Create("tdl");
        var name = NetNs.UniqueInterfaceName("tl");
        var daemon = StartTunneld(ns, _dir, name, Config(51820, Peer1("10.61.0.0/24")));
        Assert.Equal(0, ns.Run("wg", "show", name).ExitCode);

        ns.Check("ip", "link", "del", name);
        Assert.True(daemon.WaitForExit(TimeSpan.FromSeconds(10)), "tunneld kept running after its interface was deleted:\n" + daemon.Output);
        Assert.True(daemon.ExitCode == 0, daemon.Output);
        Assert.Contains($"interface {name} is gone", daemon.Output);
        Assert.Contains("keys zeroed", daemon.Output);
        Assert.DoesNotContain("failed; continuing", daemon.Output);
        Assert.False(File.Exists(SocketPath(name)), "UAPI socket left behind");
    }

    [Fact]
    public void SighupAppliesAGoodFileAsSyncconfAndIgnoresSigusr()
    {
        RootCollection.RequireRootAnd("ip", "wg");
        using var ns = NetNs.Create("tdl");
        var name = NetNs.UniqueInterfaceName("tl");
        var daemon = StartTunneld(ns, _dir, name, Config(51820, Peer1("10.61.0.0/24")));
        var path = Path.Combine(_dir, name + ".conf");

        ProcessRunner.Kill(daemon.Pid, SIGUSR1);
        ProcessRunner.Kill(daemon.Pid, SIGUSR2);

        File.WriteAllText(path, Config(51830, Peer1("10.62.0.0/24, 10.63.0.0/24") +
            $"\n[Peer]\nPublicKey = {_peer2.Public}\nAllowedIPs = 10.64.0.0/24\nPersistentKeepalive = 25\n"));
        ProcessRunner.Kill(daemon.Pid, SIGHUP);
        Eventually(() => Dump(ns, name).Length == 3, TimeSpan.FromSeconds(10), () => "SIGHUP did not apply the file:\n" + daemon.Output);
        var dump = Dump(ns, name);
        Assert.Equal("51830", dump[0].Split('\t')[2]);
        var peers = dump.Skip(1).Select(l => l.Split('\t')).ToDictionary(f => f[0]);
        Assert.Equal("10.62.0.0/24,10.63.0.0/24", peers[_peer1.Public][3]);
        Assert.Equal("10.64.0.0/24", peers[_peer2.Public][3]);
        Assert.Equal("25", peers[_peer2.Public][7]);

        // A peer dropped from the file goes, as with wg syncconf.
        File.WriteAllText(path, Config(51830, $"[Peer]\nPublicKey = {_peer2.Public}\nAllowedIPs = 10.64.0.0/24\n"));
        ProcessRunner.Kill(daemon.Pid, SIGHUP);
        Eventually(() => Dump(ns, name).Length == 2, TimeSpan.FromSeconds(10), () => "peer 1 was not removed:\n" + daemon.Output);
        Assert.Equal(_peer2.Public, Dump(ns, name)[1].Split('\t')[0]);

        Assert.False(daemon.HasExited, "a signal killed tunneld:\n" + daemon.Output);
        Assert.True(daemon.Terminate(TimeSpan.FromSeconds(20)));
        Assert.True(daemon.ExitCode == 0, daemon.Output);
        Assert.False(File.Exists(SocketPath(name)));
        Assert.DoesNotContain(_self.Private, daemon.Output);
    }

    [Fact]
    public void SighupWithABadFileChangesNothingAndSaysWhy()
    {
        RootCollection.RequireRootAnd("ip", "wg");
        using var ns = NetNs.Create("tdl");
        var name = NetNs.UniqueInterfaceName("tl");
        var daemon = StartTunneld(ns, _dir, name, Config(51820, Peer1("10.61.0.0/24")));
        var path = Path.Combine(_dir, name + ".conf");
        var before = Dump(ns, name);

        // Valid up to the last line, which is bad: nothing of it may be applied.
        File.WriteAllText(path, Config(51831, Peer1("10.62.0.0/24") +
            $"\n[Peer]\nPublicKey = {_peer2.Public}\nAllowedIPs = 10.64.0.0/24\nListenPort = 1\n"));
        ProcessRunner.Kill(daemon.Pid, SIGHUP);
        Eventually(() => daemon.Output.Contains("nothing changed"), TimeSpan.FromSeconds(10), () => "no log line for the bad reload:\n" + daemon.Output);
        Assert.Contains($"{path}:", daemon.Output);
        Assert.Equal(before, Dump(ns, name));
        Assert.False(daemon.HasExited);
        Assert.DoesNotContain(_self.Private, daemon.Output);
    }
}
