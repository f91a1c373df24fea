using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class GenerationWatchersTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(20);

    [Fact]
    public void Watchers_start_up_to_date_and_become_outdated_on_fork()
    {
        var kernel = new ForkKernel();
        using GenerationWatcher a = kernel.Watchers.Register("a");
        using GenerationWatcher b = kernel.Watchers.Register("b");
        Assert.Equal(0, kernel.Watchers.OutdatedCount);
        kernel.AddVmForkRandomness([1]);
        Assert.Equal(2, kernel.Watchers.OutdatedCount);
        Assert.True(a.IsOutdated);
        Assert.True(a.Acknowledge(1));
        Assert.Equal(1UL, a.HandledGeneration);
        Assert.Equal(1, kernel.Watchers.OutdatedCount);
        Assert.True(b.Acknowledge(1));
        Assert.Equal(0, kernel.Watchers.OutdatedCount);
    }

    [Fact]
    public void Acknowledging_a_future_or_older_generation_is_refused()
    {
        var gen = new VmGeneration();
        var watchers = new GenerationWatchers(gen);
        using GenerationWatcher w = watchers.Register("w");
        Assert.False(w.Acknowledge(1)); // does not exist yet
        gen.Advance();
        gen.Advance();
        Assert.True(w.Acknowledge(1)); // handled an older one: accepted, still outdated
        Assert.Equal(1, watchers.OutdatedCount);
        Assert.False(w.Acknowledge(0)); // backwards
        Assert.True(w.Acknowledge(2));
        Assert.Equal(0, watchers.OutdatedCount);
    }

    [Fact]
    public void Wait_returns_when_the_last_watcher_acknowledges()
    {
        var kernel = new ForkKernel();
        using GenerationWatcher overseer = kernel.Watchers.Register("overseer");
        using GenerationWatcher worker = kernel.Watchers.Register("worker");
        kernel.AddVmForkRandomness([1]);
        Assert.True(overseer.Acknowledge(kernel.Generation.Current));

        var handler = Task.Run(() =>
        {
            ulong g = worker.WaitForChange(Long);
            Thread.Sleep(50);
            worker.Acknowledge(g);
        });
        Assert.True(kernel.Watchers.WaitForAllUpToDate(Long, overseer));
        Assert.Equal(0, kernel.Watchers.OutdatedCount);
        Assert.True(handler.Wait(Long));
    }

    [Fact]
    public void Wait_times_out_while_a_watcher_is_outdated()
    {
        var kernel = new ForkKernel();
        using GenerationWatcher lazy = kernel.Watchers.Register("lazy");
        kernel.AddVmForkRandomness([1]);
        Assert.False(kernel.Watchers.WaitForAllUpToDate(TimeSpan.FromMilliseconds(120)));
        Assert.False(kernel.Watchers.WaitForAllUpToDate(TimeSpan.Zero));
    }

    [Fact]
    public void Outdated_waiter_gets_an_error_instead_of_waiting_on_itself()
    {
        var kernel = new ForkKernel();
        using GenerationWatcher self = kernel.Watchers.Register("self");
        Assert.True(kernel.Watchers.WaitForAllUpToDate(TimeSpan.Zero, self));
        kernel.AddVmForkRandomness([1]);
        var ex = Assert.Throws<InvalidOperationException>(() => kernel.Watchers.WaitForAllUpToDate(Long, self));
        Assert.Contains("self", ex.Message);
    }

    [Fact]
    public void Disposing_an_outdated_watcher_releases_the_waiters()
    {
        var kernel = new ForkKernel();
        GenerationWatcher gone = kernel.Watchers.Register("gone");
        kernel.AddVmForkRandomness([1]);
        var waiter = Task.Run(() => kernel.Watchers.WaitForAllUpToDate(Long));
        Thread.Sleep(50);
        gone.Dispose();
        gone.Dispose(); // idempotent
        Assert.True(waiter.Wait(Long));
        Assert.True(waiter.Result);
        Assert.Empty(kernel.Watchers.Watchers);
    }

    [Fact]
    public void Wait_for_change_blocks_until_a_fork()
    {
        var kernel = new ForkKernel();
        using GenerationWatcher w = kernel.Watchers.Register("w");
        Assert.Equal(0UL, w.WaitForChange(TimeSpan.FromMilliseconds(60))); // timed out, unchanged
        var forker = Task.Run(() => { Thread.Sleep(50); kernel.AddVmForkRandomness([5]); });
        Assert.Equal(1UL, w.WaitForChange(Long));
        forker.Wait(Long);
    }
}
