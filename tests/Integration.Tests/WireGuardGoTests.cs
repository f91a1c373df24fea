using Xunit;

namespace Integration.Tests;

/// <summary>
/// Proves the harness against the reference implementation: wireguard-go in two namespaces joined
/// by a veth pair, configured with wg, pinging both ways through the tunnel.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class WireGuardGoTests
{
    [Fact]
    public void WireguardGoPairPingsBothWays()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go");
        using var a = NetNs.Create("wga");
        using var b = NetNs.Create("wgb");
        NetNs.Link(a, "10.99.0.1/24", b, "10.99.0.2/24");
        var wgA = NetNs.UniqueInterfaceName("wg");
        var wgB = NetNs.UniqueInterfaceName("wg");
        var sockA = $"/var/run/wireguard/{wgA}.sock";
        var sockB = $"/var/run/wireguard/{wgB}.sock";
        a.RemoveOnDispose(sockA);
        b.RemoveOnDispose(sockB);

        var goA = a.Start("wireguard-go", "-f", wgA);
        var goB = b.Start("wireguard-go", "-f", wgB);
        WaitFor(sockA, goA);
        WaitFor(sockB, goB);

        var keyA = ProcessRunner.Check(["wg", "genkey"]).Trim();
        var keyB = ProcessRunner.Check(["wg", "genkey"]).Trim();
        var pubA = ProcessRunner.Check(["wg", "pubkey"], keyA + "\n").Trim();
        var pubB = ProcessRunner.Check(["wg", "pubkey"], keyB + "\n").Trim();

        // private-key reads a file: /dev/stdin keeps the key off the disk.
        Check(a.RunWithInput(keyA + "\n", "wg", "set", wgA, "listen-port", "51820", "private-key", "/dev/stdin",
            "peer", pubB, "allowed-ips", "10.200.0.2/32,fd20::2/128", "endpoint", "10.99.0.2:51821"));
        Check(b.RunWithInput(keyB + "\n", "wg", "set", wgB, "listen-port", "51821", "private-key", "/dev/stdin",
            "peer", pubA, "allowed-ips", "10.200.0.1/32,fd20::1/128", "endpoint", "10.99.0.1:51820"));
        a.Check("ip", "addr", "add", "10.200.0.1/24", "dev", wgA);
        b.Check("ip", "addr", "add", "10.200.0.2/24", "dev", wgB);
        a.Check("ip", "addr", "add", "fd20::1/64", "dev", wgA, "nodad");
        b.Check("ip", "addr", "add", "fd20::2/64", "dev", wgB, "nodad");
        a.Check("ip", "link", "set", wgA, "up");
        b.Check("ip", "link", "set", wgB, "up");

        Check(a.Run("ping", "-c", "3", "-W", "5", "10.200.0.2"));
        Check(b.Run("ping", "-c", "3", "-W", "5", "10.200.0.1"));
        Check(a.Run("ping", "-6", "-c", "2", "-W", "5", "fd20::2"));

        var dump = a.Check("wg", "show", wgA, "dump");
        var peer = dump.Split('\n')[1].Split('\t');
        Assert.NotEqual("0", peer[4]); // latest handshake
        Assert.NotEqual("0", peer[5]); // rx bytes

        Assert.True(goA.Terminate(TimeSpan.FromSeconds(10)), "wireguard-go ignored SIGTERM");
        Assert.False(File.Exists(sockA), "wireguard-go left its socket behind");
    }

    private static void Check(CommandResult result) => Assert.True(result.ExitCode == 0, result.ToString());

    private static void WaitFor(string socket, BackgroundProcess daemon)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!File.Exists(socket))
        {
            if (daemon.HasExited)
                Assert.Fail($"{daemon.Command} exited: {daemon.Output}");
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"{socket} did not appear: {daemon.Output}");
            Thread.Sleep(50);
        }
    }
}
