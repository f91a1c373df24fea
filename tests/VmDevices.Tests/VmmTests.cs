using ForkNotify;

namespace VmDevices.Tests;

/// <summary>A guest program with a tick counter and a record of what it saw; its state is the counter.</summary>
internal sealed class TickWorkload : IGuestWorkload
{
    private readonly GuestContext _context;
    private readonly int _maxTicks;

    public TickWorkload(GuestContext context, int maxTicks)
    {
        _context = context;
        _maxTicks = maxTicks;
        context.Kernel.Pm.Register(new NotifierBlock((_, action, _) =>
        {
            if ((PmEvent)action == PmEvent.PostVmFork)
            {
                PostVmForkAt.Add(context.Now);
                context.Record($"PostVmFork, generation {context.Kernel.Generation.Current}, tick {Ticks}");
            }
            return NotifyResult.Ok;
        }));
    }

    public int Ticks { get; private set; }

    public List<TimeSpan> PostVmForkAt { get; } = new();

    /// <summary>(vmgenid CTRA, leak word, kernel generation) at the first instant the guest ran.</summary>
    public (ulong Ctra, ulong Leak, ulong Generation)? AtResume { get; private set; }

    public object CaptureState() => Ticks;

    public void RestoreState(object state) => Ticks = (int)state;

    public void OnResume()
    {
        AtResume = (_context.VmGenIdCounter?.Read() ?? 0, _context.LeakCounter?.Read() ?? 0, _context.Kernel.Generation.Current);
        _context.Record($"resumed at tick {Ticks}: ctra {AtResume.Value.Ctra}, leak {AtResume.Value.Leak}, generation {AtResume.Value.Generation}");
        Schedule();
    }

    private void Schedule()
    {
        if (Ticks < _maxTicks)
            _context.Scheduler.Schedule(TimeSpan.FromMilliseconds(1), () => { Ticks++; Schedule(); });
    }
}

public class VmmTests
{
    private static GuestConfig Config(List<TickWorkload> created, int maxTicks = 10) => new()
    {
        Workloads = [ctx => { var w = new TickWorkload(ctx, maxTicks); created.Add(w); return w; }],
    };

    [Fact]
    public void Boot_probes_both_devices_and_exposes_their_pull_counters()
    {
        using var vmm = Vmm.CreateDeterministic(1);
        var created = new List<TickWorkload>();
        var g = vmm.Boot(Config(created));
        Assert.True(g.VmGenIdDriver!.Probed);
        Assert.True(g.RngDriver!.LeakNegotiated);
        Assert.Equal(2, g.Context.PullCounters.Count);
        Assert.Equal(g.VmGenId!.GenerationId.ToArray(), g.VmGenIdDriver.CurrentId.ToArray());
        vmm.RunUntilIdle();
        Assert.Equal(10, created.Single().Ticks);
        Assert.Empty(created.Single().PostVmForkAt);
    }

    [Fact]
    public void Forked_clone_sees_new_values_at_resume_and_gets_PostVmFork_after_the_delay()
    {
        using var vmm = Vmm.CreateDeterministic(7);
        var created = new List<TickWorkload>();
        var parent = vmm.Boot(Config(created));
        vmm.RunFor(TimeSpan.FromMilliseconds(3.5));
        var snap = vmm.Snapshot(parent, new SnapshotOptions { SignalLeakOnSave = false });
        byte[] oldId = parent.VmGenId!.GenerationId.ToArray();
        byte[] newId = vmm.NewVmId();
        ulong parentGeneration = parent.Kernel.Generation.Current;

        var clone = vmm.Restore(snap, new RestoreOptions
        {
            VmGenerationId = newId,
            VmGenIdNotifyDelay = TimeSpan.FromMilliseconds(5),
            LeakInterruptDelay = TimeSpan.FromMilliseconds(8),
        });
        TimeSpan resumedAt = vmm.Scheduler.Now;

        // Before the clone executes anything: the new ID is in its memory, the counters are new.
        var idInMemory = new byte[16];
        Assert.True(clone.Memory.TryRead(clone.VmGenId!.IdAddress, idInMemory, "test"));
        Assert.Equal(newId, idInMemory);
        Assert.NotEqual(oldId, newId);
        Assert.Equal(oldId, clone.VmGenIdDriver!.CurrentId.ToArray()); // the driver has not looked yet

        vmm.RunUntilIdle();

        var w = created[1];
        Assert.NotSame(created[0], w);
        Assert.Equal(10, created[0].Ticks); // the parent ran on, untouched by its clone
        Assert.Equal((1UL, VirtioRngDriver.InitialLeakGeneration + 1, parentGeneration), w.AtResume);
        Assert.Equal([resumedAt + TimeSpan.FromMilliseconds(5), resumedAt + TimeSpan.FromMilliseconds(8)], w.PostVmForkAt);
        Assert.Equal(newId, clone.VmGenIdDriver.CurrentId.ToArray());
        Assert.Equal(parentGeneration + 2, clone.Kernel.Generation.Current); // vmgenid + leak fill
        Assert.Empty(created[0].PostVmForkAt);
        Assert.Equal(10, w.Ticks); // restored at 3 ticks and ran on
    }

    [Fact]
    public void Fork_gives_every_clone_its_own_id_objects_and_kernel()
    {
        using var vmm = Vmm.CreateDeterministic(3);
        var created = new List<TickWorkload>();
        var parent = vmm.Boot(Config(created));
        vmm.RunFor(TimeSpan.FromMilliseconds(2));
        var snap = vmm.Snapshot(parent);
        var clones = vmm.Fork(snap, 4, i => new RestoreOptions { VmGenIdNotifyDelay = TimeSpan.FromMilliseconds(i) });
        vmm.RunUntilIdle();

        Assert.Equal(4, clones.Select(c => Convert.ToHexString(c.VmGenId!.GenerationId)).Distinct().Count());
        Assert.Equal(5, created.Distinct().Count());
        Assert.Equal(5, created.Select(w => w.GetHashCode()).Distinct().Count());
        Assert.Equal(4, clones.Select(c => c.Kernel).Distinct().Count());
        Assert.All(clones, c => Assert.Equal(c.VmGenId!.GenerationId.ToArray(), c.VmGenIdDriver!.CurrentId.ToArray()));
        Assert.All(created.Skip(1), w => Assert.Equal(2, w.PostVmForkAt.Count));
        // The source got the leak-on-save event: its own state was copied too.
        Assert.Single(created[0].PostVmForkAt);
        // Different random state after the fork path: clones do not produce the same bytes.
        var outputs = clones.Select(c => { var b = new byte[32]; c.Kernel.Random.Fill(b); return Convert.ToHexString(b); });
        Assert.Equal(4, outputs.Distinct().Count());
    }

    [Fact]
    public void Restore_with_the_same_id_is_a_spurious_notify_the_driver_ignores()
    {
        using var vmm = Vmm.CreateDeterministic(5);
        var created = new List<TickWorkload>();
        var parent = vmm.Boot(Config(created) with { VirtioRng = false });
        var snap = vmm.Snapshot(parent);
        var clone = vmm.Restore(snap, new RestoreOptions { KeepVmGenerationId = true, VmGenIdNotifyDelay = TimeSpan.FromMilliseconds(1) });
        vmm.RunUntilIdle();
        Assert.Equal(1, clone.VmGenIdDriver!.SpuriousIgnored);
        Assert.Empty(created[1].PostVmForkAt);
        Assert.Equal(0UL, clone.Context.VmGenIdCounter!.Read());
    }

    [Fact]
    public void Lost_notification_leaves_only_the_pull_counter_to_see_the_fork()
    {
        using var vmm = Vmm.CreateDeterministic(9);
        var created = new List<TickWorkload>();
        var parent = vmm.Boot(Config(created) with { VirtioRng = false });
        var clone = vmm.Restore(vmm.Snapshot(parent), new RestoreOptions { DeliverVmGenIdNotify = false });
        vmm.RunUntilIdle();
        Assert.Empty(created[1].PostVmForkAt);
        Assert.Equal(0, clone.VmGenIdDriver!.ForksHandled);
        Assert.Equal(1UL, clone.Context.VmGenIdCounter!.Read());
        Assert.Equal(parent.Kernel.Generation.Current, clone.Kernel.Generation.Current);
    }

    [Fact]
    public void Delays_beyond_the_end_of_time_do_not_overflow()
    {
        var s = new DeterministicScheduler(1);
        s.RunFor(TimeSpan.FromSeconds(1));
        var ev = s.Schedule(TimeSpan.MaxValue, () => { });
        Assert.Equal(TimeSpan.MaxValue, ev.Due);
        Assert.Equal(TimeSpan.FromSeconds(1), s.Schedule(TimeSpan.FromSeconds(-5), () => { }).Due);
    }

    [Fact]
    public void A_clone_of_a_clone_forks_again()
    {
        using var vmm = Vmm.CreateDeterministic(11);
        var created = new List<TickWorkload>();
        var g0 = vmm.Boot(Config(created));
        var g1 = vmm.Restore(vmm.Snapshot(g0));
        vmm.RunUntilIdle();
        var g2 = vmm.Restore(vmm.Snapshot(g1), new RestoreOptions { Name = "grandchild" });
        vmm.RunUntilIdle();
        Assert.Equal("grandchild", g2.Name);
        Assert.Equal(2UL, g2.Context.VmGenIdCounter!.Read());
        Assert.Equal(2, created[2].PostVmForkAt.Count);
        Assert.NotEqual(g1.VmGenId!.GenerationId.ToArray(), g2.VmGenId!.GenerationId.ToArray());
        Assert.True(g2.Kernel.Generation.Current > g1.Kernel.Generation.Current);
    }

    [Fact]
    public void Interrupt_pending_at_snapshot_time_is_delivered_in_the_clone()
    {
        using var vmm = Vmm.CreateDeterministic(13);
        var created = new List<TickWorkload>();
        var g0 = vmm.Boot(Config(created) with { VirtioRng = false });
        var g1 = vmm.Restore(vmm.Snapshot(g0), new RestoreOptions { VmGenIdNotifyDelay = TimeSpan.FromMilliseconds(50) });
        vmm.RunFor(TimeSpan.FromMilliseconds(1));
        // g1's Notify is latched but not handled; snapshot it now and restore keeping g1's ID.
        var snap = vmm.Snapshot(g1);
        g1.Destroy();
        var g2 = vmm.Restore(snap, new RestoreOptions { KeepVmGenerationId = true });
        vmm.RunUntilIdle();
        Assert.Single(created[2].PostVmForkAt); // the latched notify found the new ID
        Assert.Empty(created[1].PostVmForkAt);  // destroyed before its notify
        Assert.Equal(1, g2.VmGenIdDriver!.SpuriousIgnored); // the post-load notify of the unchanged ID
    }

    [Fact]
    public void Destroyed_guest_runs_nothing_more()
    {
        using var vmm = Vmm.CreateDeterministic(17);
        var created = new List<TickWorkload>();
        var g = vmm.Boot(Config(created));
        vmm.RunFor(TimeSpan.FromMilliseconds(4.5));
        g.Destroy();
        vmm.RunUntilIdle();
        Assert.Equal(4, created[0].Ticks);
    }

    private static IReadOnlyList<string> Scenario(ulong seed)
    {
        using var vmm = Vmm.CreateDeterministic(seed);
        var created = new List<TickWorkload>();
        var parent = vmm.Boot(Config(created, maxTicks: 6));
        vmm.RunFor(TimeSpan.FromMilliseconds(2));
        var snap = vmm.Snapshot(parent);
        // Equal delays on purpose: the order of simultaneous events comes from the seed.
        vmm.Fork(snap, 3, i => new RestoreOptions
        {
            VmGenIdNotifyDelay = TimeSpan.FromMilliseconds(1),
            LeakInterruptDelay = TimeSpan.FromMilliseconds(1),
        });
        vmm.RunUntilIdle();
        return vmm.Trace.Entries;
    }

    [Fact]
    public void Same_seed_gives_the_same_trace_and_another_seed_does_not()
    {
        var a = Scenario(1234);
        var b = Scenario(1234);
        Assert.True(a.Count > 20);
        Assert.Equal(a, b);
        Assert.NotEqual(a, Scenario(1235));
    }

    [Fact]
    public void Real_time_mode_forks_and_notifies()
    {
        using var vmm = Vmm.CreateRealTime();
        var created = new List<TickWorkload>();
        var parent = vmm.Boot(Config(created));
        var snap = vmm.Snapshot(parent);
        var clones = vmm.Fork(snap, 2, new RestoreOptions { VmGenIdNotifyDelay = TimeSpan.FromMilliseconds(20) });
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (clones.Any(c => c.VmGenIdDriver!.ForksHandled == 0) && DateTime.UtcNow < deadline)
            Thread.Sleep(5);
        Assert.All(clones, c => Assert.Equal(1, c.VmGenIdDriver!.ForksHandled));
        lock (vmm.Scheduler.Gate)
            Assert.All(clones, c => Assert.Equal(c.VmGenId!.GenerationId.ToArray(), c.VmGenIdDriver!.CurrentId.ToArray()));
        Assert.Null(vmm.Seed);
    }
}
