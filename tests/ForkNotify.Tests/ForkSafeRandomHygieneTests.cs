using System.Reflection;
using System.Text;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

/// <summary>Issue 14 point 7: where the generator keeps its key, its timer, and its pull self-check.</summary>
public sealed class ForkSafeRandomHygieneTests
{
    private static readonly byte[] Seed = Encoding.ASCII.GetBytes("hygiene seed");

    private static byte[] Field(ForkSafeRandom rng, string name) =>
        (byte[])typeof(ForkSafeRandom).GetField(name, BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(rng)!;

    [Fact]
    public void Key_and_buffer_are_pinned_and_zeroed_on_dispose()
    {
        var rng = new ForkSafeRandom(new VmGeneration(), Seed);
        Bytes.Of(rng, 40);
        byte[] key = Field(rng, "_key");
        byte[] output = Field(rng, "_output");
        // The pinned object heap reports its objects as generation 2 from birth, and never moves them.
        Assert.Equal(2, GC.GetGeneration(key));
        Assert.Equal(2, GC.GetGeneration(output));
        Assert.NotEqual(0, key.Max());

        rng.Dispose();

        Assert.Equal(0, key.Max());
        Assert.Equal(0, output.Max());
    }

    [Fact]
    public void It_reseeds_from_the_host_at_least_every_sixty_seconds()
    {
        long now = 0;
        var rng = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(), () => now);
        Bytes.Of(rng, 16);
        long before = rng.Reseeds;
        now += ForkSafeRandom.ReseedIntervalMillis - 1;
        Bytes.Of(rng, 16);
        Assert.Equal(before, rng.Reseeds);
        now += 1;
        Bytes.Of(rng, 16);
        Assert.Equal(before + 1, rng.Reseeds);
    }

    [Fact]
    public void The_self_check_watches_the_pull_counter_so_clones_diverge_before_any_notification()
    {
        // Two clones of one state: the hypervisor moved the pull counter, the push generation has
        // not moved (no notification handled yet). Per-clone host entropy must separate them.
        var pull1 = new VmGeneration(5);
        var pull2 = new VmGeneration(5);
        var original = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(1)) { PullCounter = pull1 };
        ForkSafeRandomState state = original.Capture();
        var clone1 = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(2)) { PullCounter = pull1 };
        var clone2 = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(3)) { PullCounter = pull2 };
        clone1.Restore(state);
        clone2.Restore(state);
        pull1.Advance();
        pull2.Advance();

        Assert.NotEqual(Bytes.Of(clone1, 32), Bytes.Of(clone2, 32));
    }

    [Fact]
    public void Without_a_pull_counter_the_same_clones_stay_identical()
    {
        // The negative control of the test above.
        var original = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(1));
        ForkSafeRandomState state = original.Capture();
        var clone1 = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(2));
        var clone2 = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy(3));
        clone1.Restore(state);
        clone2.Restore(state);

        Assert.Equal(Bytes.Of(clone1, 32), Bytes.Of(clone2, 32));
    }
}
