using System.Text;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class ForkKernelTests
{
    private static readonly byte[] Seed = Encoding.ASCII.GetBytes("guest seed");
    private static readonly byte[] BootId = Convert.FromHexString("00112233445566778899aabbccddeeff");
    private static readonly byte[] IdA = Convert.FromHexString("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
    private static readonly byte[] IdB = Convert.FromHexString("b0b1b2b3b4b5b6b7b8b9babbbcbdbebf");

    [Fact]
    public void Generation_is_a_plain_counter()
    {
        var g = new VmGeneration();
        Assert.Equal(0UL, g.Current);
        Assert.Equal(1UL, g.Advance());
        Assert.Equal(2UL, g.Advance());
        g.Set(41);
        Assert.Equal(41UL, ((IGenerationCounter)g).Read());
        Assert.Equal(42UL, g.Advance());
    }

    [Fact]
    public void Fork_path_order_is_reseed_then_generation_then_chain()
    {
        var entropy = new FixedEntropy();
        var kernel = new ForkKernel(Seed, null, entropy);
        var events = new List<string>();
        entropy.OnFill = () => events.Add($"reseed at generation {kernel.Generation.Current}");
        using GenerationWatcher watcher = kernel.Watchers.Register("session table");
        kernel.Pm.Register(new NotifierBlock((b, action, d) =>
        {
            events.Add($"chain action {action} at generation {kernel.Generation.Current}, outdated {kernel.Watchers.OutdatedCount}");
            return NotifyResult.Ok;
        }));

        Assert.True(kernel.AddVmForkRandomness(IdA));

        Assert.Equal(["reseed at generation 0", "chain action 7 at generation 1, outdated 1"], events);
    }

    [Fact]
    public void Same_id_does_nothing()
    {
        var kernel = new ForkKernel(Seed);
        kernel.SetBootVmId(BootId);
        int calls = 0;
        kernel.Pm.Register(new NotifierBlock((b, a, d) => { calls++; return NotifyResult.Ok; }));
        long reseeds = kernel.Random.Reseeds;

        Assert.False(kernel.AddVmForkRandomness(BootId)); // spurious notify
        Assert.Equal(0UL, kernel.Generation.Current);
        Assert.Equal(0, calls);
        Assert.Equal(reseeds, kernel.Random.Reseeds);

        Assert.True(kernel.AddVmForkRandomness(IdA));
        Assert.False(kernel.AddVmForkRandomness(IdA));
        Assert.True(kernel.AddVmForkRandomness(IdB));
        Assert.Equal(2UL, kernel.Generation.Current);
        Assert.Equal(2, calls);
    }

    [Fact]
    public void First_notification_without_boot_id_is_a_fork()
    {
        var kernel = new ForkKernel(Seed);
        Assert.True(kernel.AddVmForkRandomness(IdA));
        Assert.Equal(1UL, kernel.Generation.Current);
    }

    [Fact]
    public void Two_restored_copies_with_different_vm_ids_diverge()
    {
        (ForkKernel c1, ForkKernel c2, byte[] preFork) = TwoClones(reseed: true);
        // before the fork: both clones emit the snapshot's bytes (the danger)
        Assert.Equal(preFork, Bytes.Of(c1.Random, 32));
        Assert.Equal(preFork, Bytes.Of(c2.Random, 32));

        Assert.True(c1.AddVmForkRandomness(IdA));
        Assert.True(c2.AddVmForkRandomness(IdB));
        Assert.NotEqual(Bytes.Of(c1.Random, 64), Bytes.Of(c2.Random, 64));
    }

    [Fact]
    public void Negative_control_without_reseed_restored_copies_stay_identical()
    {
        (ForkKernel c1, ForkKernel c2, _) = TwoClones(reseed: false);
        Bytes.Of(c1.Random, 32);
        Bytes.Of(c2.Random, 32);
        Assert.True(c1.AddVmForkRandomness(IdA));
        Assert.True(c2.AddVmForkRandomness(IdB));
        Assert.Equal(1UL, c1.Generation.Current); // the rest of the fork path still ran
        Assert.Equal(Bytes.Of(c1.Random, 64), Bytes.Of(c2.Random, 64));
    }

    private static (ForkKernel, ForkKernel, byte[]) TwoClones(bool reseed)
    {
        var original = new ForkKernel(Seed);
        original.SetBootVmId(BootId);
        Bytes.Of(original.Random, 50);
        ForkKernelState snapshot = original.Capture();
        byte[] next = Bytes.Of(original.Random, 32);

        var c1 = new ForkKernel() { ReseedRandomOnFork = reseed };
        var c2 = new ForkKernel() { ReseedRandomOnFork = reseed };
        c1.Restore(snapshot);
        c2.Restore(snapshot);
        return (c1, c2, next);
    }

    [Fact]
    public void Restored_kernel_remembers_the_last_id_so_a_same_id_notify_is_ignored()
    {
        var original = new ForkKernel(Seed);
        original.AddVmForkRandomness(IdA);
        ForkKernelState snapshot = original.Capture();
        Assert.Equal(IdA, snapshot.GetLastVmId());
        var clone = new ForkKernel();
        clone.Restore(snapshot);
        Assert.Equal(1UL, clone.Generation.Current);
        Assert.False(clone.AddVmForkRandomness(IdA));
        Assert.True(clone.AddVmForkRandomness(IdB));
        Assert.Equal(2UL, clone.Generation.Current);
    }

    [Fact]
    public void Restore_keeps_chain_registrations()
    {
        var kernel = new ForkKernel(Seed);
        ForkKernelState empty = kernel.Capture();
        int calls = 0;
        kernel.Pm.Register(new NotifierBlock((b, a, d) => { calls++; return NotifyResult.Ok; }));
        kernel.Restore(empty);
        Assert.Equal(1, kernel.Pm.Chain.Count);
        kernel.AddVmForkRandomness(IdA);
        Assert.Equal(1, calls);
    }

    [Fact]
    public void A_throwing_subscriber_neither_breaks_nor_vetoes_the_fork_path()
    {
        var logger = new ListLogger();
        var kernel = new ForkKernel(Seed, logger);
        int later = 0;
        kernel.Pm.Register(new NotifierBlock((b, a, d) => throw new IOException("subscriber bug"), 10));
        kernel.Pm.Register(new NotifierBlock((b, a, d) => { later++; return NotifyResult.Ok; }, 0));
        Assert.True(kernel.AddVmForkRandomness(IdA));
        Assert.True(kernel.AddVmForkRandomness(IdB));
        // A fork has happened whatever a subscriber says: BAD (a throw) does not stop the walk, so
        // a hostile block ahead of the fork guard cannot keep it from clearing (issue 14 point 5).
        Assert.Equal(2, later);
        Assert.Equal(2UL, kernel.Generation.Current);
        Assert.Contains(logger.Entries, e => e.Exception is IOException);
    }
}

public sealed class ForkKernelStressTests
{
    [Fact]
    public void Forks_concurrent_with_fills_and_captures_stay_consistent()
    {
        var kernel = new ForkKernel();
        int chainCalls = 0;
        ulong lastSeenByChain = 0;
        bool outOfOrder = false;
        kernel.Pm.Register(new NotifierBlock((b, a, d) =>
        {
            ulong g = kernel.Generation.Current;
            if (g <= lastSeenByChain) outOfOrder = true; // each PostVmFork sees a newer generation
            lastSeenByChain = g;
            chainCalls++;
            return NotifyResult.Ok;
        }));
        using var stop = new CancellationTokenSource();
        var errors = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, 3).Select(i => new Thread(() =>
        {
            try
            {
                var buffer = new byte[48];
                while (!stop.IsCancellationRequested)
                {
                    kernel.Random.Fill(buffer);
                    if (i == 0) kernel.Capture().Random.Clear();
                }
            }
            catch (Exception ex) { errors.Enqueue(ex); }
        })).ToList();
        workers.ForEach(t => t.Start());

        const int forks = 500;
        for (int n = 1; n <= forks; n++)
            Assert.True(kernel.AddVmForkRandomness(BitConverter.GetBytes(n)));
        stop.Cancel();
        workers.ForEach(t => t.Join());

        Assert.Empty(errors);
        Assert.False(outOfOrder);
        Assert.Equal(forks, chainCalls);
        Assert.Equal((ulong)forks, kernel.Generation.Current);
        Assert.True(kernel.Random.Reseeds >= forks); // at least one per fork
    }
}
