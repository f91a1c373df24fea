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

    [Fact]
    public void The_sweep_removes_only_its_own_names_whose_creating_process_is_gone()
    {
        RootCollection.RequireRootAnd("ip", "true");
        int deadPid;
        using (var gone = System.Diagnostics.Process.Start("true"))
        {
            gone.WaitForExit();
            deadPid = gone.Id;
        }
        var pidns = NetNs.OwnPidNamespace.Value;
        string Name(string ns, int pid) => $"tt-{ns}-{pid}-{Guid.NewGuid().ToString("N")[..8]}-sweep";
        var dead = Name(pidns, deadPid);
        var alive = Name(pidns, Environment.ProcessId);        // a run going on now
        var otherPidNamespace = Name("1", deadPid);            // PID means something else there
        var foreign = $"xx-{pidns}-{deadPid}-{Guid.NewGuid().ToString("N")[..8]}-sweep"; // not ours
        string[] all = [dead, alive, otherPidNamespace, foreign];
        try
        {
            foreach (var name in all)
                ProcessRunner.Check(["ip", "netns", "add", name]);
            NetNs.SweepLeftovers();
            var left = ProcessRunner.Check(["ip", "netns", "list"]);
            Assert.DoesNotContain(dead, left);
            Assert.Contains(alive, left);
            Assert.Contains(otherPidNamespace, left);
            Assert.Contains(foreign, left);
        }
        finally
        {
            foreach (var name in all)
                ProcessRunner.Run(["ip", "netns", "del", name]);
        }
    }

    [Fact]
    public void Dispose_kills_a_process_that_ignores_sigterm()
    {
        RootCollection.RequireRootAnd("sh", "sleep");
        var process = new BackgroundProcess(["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"]);
        var pid = process.Pid;
        Assert.True(SpinWait.SpinUntil(() => process.Output.Contains("ready"), TimeSpan.FromSeconds(10)));
        process.Dispose();
        Assert.False(Directory.Exists($"/proc/{pid}"), "the process survived Dispose");
    }
}
