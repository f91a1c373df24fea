namespace VmDevices.Tests;

public class ForkScenarioTests
{
    /// <summary>The shape issue 6 will run 1,000 times: boot, run, snapshot, fork, run to the end.</summary>
    [Fact]
    [Trait("Category", "Long")]
    public void Thousand_seeded_fork_scenarios_each_reach_PostVmFork_in_every_clone()
    {
        for (ulong seed = 0; seed < 1000; seed++)
        {
            using var vmm = Vmm.CreateDeterministic(seed);
            vmm.Trace.Enabled = false;
            var created = new List<TickWorkload>();
            var parent = vmm.Boot(new GuestConfig { Workloads = [ctx => { var w = new TickWorkload(ctx, 5); created.Add(w); return w; }] });
            vmm.RunFor(TimeSpan.FromMilliseconds(seed % 5));
            var snap = vmm.Snapshot(parent);
            var clones = vmm.Fork(snap, 3, i => new RestoreOptions
            {
                VmGenIdNotifyDelay = TimeSpan.FromMilliseconds((seed + (ulong)i) % 7),
                LeakInterruptDelay = TimeSpan.FromMilliseconds((seed * 3 + (ulong)i) % 5),
            });
            vmm.RunUntilIdle();
            Assert.All(created.Skip(1), w => Assert.Equal(2, w.PostVmForkAt.Count));
            Assert.Equal(3, clones.Select(c => Convert.ToHexString(c.VmGenId!.GenerationId)).Distinct().Count());
        }
    }
}
