namespace VmDevices.Tests;

public class SchedulerTests
{
    [Fact]
    public void Events_run_in_virtual_time_order_and_advance_the_clock()
    {
        var s = new DeterministicScheduler(1);
        var log = new List<string>();
        s.Schedule(TimeSpan.FromMilliseconds(5), () => log.Add($"b@{s.Now.TotalMilliseconds}"));
        s.Schedule(TimeSpan.FromMilliseconds(1), () =>
        {
            log.Add($"a@{s.Now.TotalMilliseconds}");
            s.Schedule(TimeSpan.FromMilliseconds(1), () => log.Add($"c@{s.Now.TotalMilliseconds}"));
        });
        s.RunUntilIdle();
        Assert.Equal(["a@1", "c@2", "b@5"], log);
        Assert.Equal(TimeSpan.FromMilliseconds(5), s.Now);
    }

    [Fact]
    public void RunFor_stops_at_the_horizon()
    {
        var s = new DeterministicScheduler(1);
        bool late = false;
        s.Schedule(TimeSpan.FromSeconds(2), () => late = true);
        s.RunFor(TimeSpan.FromSeconds(1));
        Assert.False(late);
        Assert.Equal(TimeSpan.FromSeconds(1), s.Now);
        s.RunFor(TimeSpan.FromSeconds(1));
        Assert.True(late);
    }

    [Fact]
    public void Cancelled_event_does_not_run()
    {
        var s = new DeterministicScheduler(1);
        bool ran = false;
        s.Schedule(TimeSpan.Zero, () => ran = true).Cancel();
        s.RunUntilIdle();
        Assert.False(ran);
    }

    private static string TieOrder(ulong seed)
    {
        var s = new DeterministicScheduler(seed);
        var order = new System.Text.StringBuilder();
        for (int i = 0; i < 8; i++)
        {
            char c = (char)('a' + i);
            s.Schedule(TimeSpan.FromMilliseconds(3), () => order.Append(c));
        }
        s.RunUntilIdle();
        return order.ToString();
    }

    [Fact]
    public void Ties_are_broken_by_the_seed_and_replay_exactly()
    {
        Assert.Equal(TieOrder(42), TieOrder(42));
        var orders = Enumerable.Range(0, 10).Select(i => TieOrder((ulong)i)).ToHashSet();
        Assert.True(orders.Count > 1, "different seeds should interleave simultaneous events differently");
    }

    [Fact]
    public void A_scenario_that_never_settles_is_reported()
    {
        var s = new DeterministicScheduler(1);
        void Again() => s.Schedule(TimeSpan.FromTicks(1), Again);
        Again();
        Assert.Throws<InvalidOperationException>(() => s.RunUntilIdle(maxEvents: 100));
    }

    [Fact]
    public void Real_time_scheduler_runs_events_and_survives_a_throwing_one()
    {
        using var s = new RealTimeScheduler();
        Exception? failure = null;
        s.EventFailed += e => failure = e;
        using var done = new ManualResetEventSlim();
        s.Schedule(TimeSpan.Zero, () => throw new InvalidOperationException("boom"));
        s.Schedule(TimeSpan.FromMilliseconds(10), done.Set);
        Assert.True(done.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        Assert.IsType<InvalidOperationException>(failure);
    }

    [Fact]
    public void Deterministic_entropy_replays_from_its_seed()
    {
        var a = new byte[100];
        var b = new byte[100];
        new DeterministicEntropy(7).Fill(a);
        var e = new DeterministicEntropy(7);
        e.Fill(b.AsSpan(0, 33));
        e.Fill(b.AsSpan(33));
        Assert.Equal(a, b);
        var c = new byte[100];
        new DeterministicEntropy(8).Fill(c);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Interrupt_line_latches_now_and_delivers_after_the_latency()
    {
        var s = new DeterministicScheduler(1);
        var line = new InterruptLine("irq", s);
        var got = new List<(uint, TimeSpan)>();
        line.Connect(v => got.Add((v, s.Now)));
        line.Raise(0x80, TimeSpan.FromMilliseconds(3));
        Assert.Equal(1, line.PendingCount);
        s.RunUntilIdle();
        Assert.Equal([(0x80u, TimeSpan.FromMilliseconds(3))], got);
        Assert.Equal(0, line.PendingCount);
    }
}
