namespace ForkSim.Tests;

/// <summary>Suspend and hibernate: one guest, no copy; the guard must still clear every key.</summary>
public class SleepEventTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(ForkEventKind.Suspend, ForkGuardMode.Notifier)]
    [InlineData(ForkEventKind.Suspend, ForkGuardMode.Both)]
    [InlineData(ForkEventKind.Hibernate, ForkGuardMode.Notifier)]
    [InlineData(ForkEventKind.Hibernate, ForkGuardMode.Both)]
    public void Sleep_clears_every_key_and_traffic_resumes_under_new_keys(ForkEventKind kind, ForkGuardMode mode)
    {
        var result = ForkSimulation.Run(new ForkScenario { Seed = 11, Mode = mode, Event = kind });
        output.WriteLine(result.Describe());

        Assert.True(result.HadSessionAtEvent);
        GuestOutcome guest = Assert.Single(result.Guests);
        Assert.Equal(1, guest.SessionsCleared);
        Assert.Equal(0, result.StalePackets);
        Assert.NotNull(guest.FirstNewKeyPacketAt);
        Assert.True(guest.DataPacketsSent > 0);
        Assert.Equal(0, result.ReusedPairs);
    }

    [Theory]
    [InlineData(ForkEventKind.Suspend)]
    [InlineData(ForkEventKind.Hibernate)]
    public void Without_the_guard_the_old_keys_survive_the_sleep(ForkEventKind kind)
    {
        // Negative control: the same run unguarded keeps sending under the keys from before the sleep,
        // so the stale-key count above can fail.
        var result = ForkSimulation.Run(new ForkScenario { Seed = 11, Mode = ForkGuardMode.Off, Event = kind });
        output.WriteLine(result.Describe());

        Assert.True(result.StalePackets > 0);
        Assert.Equal(0, Assert.Single(result.Guests).SessionsCleared);
    }
}
