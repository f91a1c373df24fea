using Xunit;

namespace Integration.Tests;

[Collection(RootCollection.Name)]
public sealed class NetNsTests
{
    [Fact]
    public void VethPairConnectsTwoNamespacesAndDisposeRemovesEverything()
    {
        RootCollection.RequireRootAnd("ip", "ping", "sleep");
        string nameA, nameB;
        int sleeperPid;
        using (var a = NetNs.Create())
        using (var b = NetNs.Create())
        {
            nameA = a.Name;
            nameB = b.Name;
            NetNs.Link(a, "10.99.0.1/24", b, "10.99.0.2/24");
            var ping = a.Run("ping", "-c", "1", "-W", "5", "10.99.0.2");
            Assert.True(ping.ExitCode == 0, ping.ToString());
            // Isolation: the host namespace cannot reach it.
            Assert.DoesNotContain("10.99.0.1", ProcessRunner.Check(["ip", "-4", "addr"]));
            var sleeper = b.Start("sleep", "600");
            sleeperPid = sleeper.Pid;
            Assert.False(sleeper.HasExited);
        }
        var namespaces = ProcessRunner.Check(["ip", "netns", "list"]);
        Assert.DoesNotContain(nameA, namespaces);
        Assert.DoesNotContain(nameB, namespaces);
        Assert.False(Directory.Exists($"/proc/{sleeperPid}") &&
                     File.ReadAllText($"/proc/{sleeperPid}/cmdline").Contains("sleep"),
            "background process survived Dispose");
    }
}
