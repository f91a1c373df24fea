namespace ForkSim.Tests;

/// <summary>How soon clones talk again under new keys (availability, not safety).</summary>
public class RekeyLatencyTests(ITestOutputHelper output)
{
    [Fact]
    public void HotPath_clones_have_new_keys_one_round_trip_after_their_notification()
    {
        var result = ForkSimulation.Run(new ForkScenario
        {
            Seed = 1, Mode = ForkGuardMode.HotPath, Clones = 3, NotifyDelays = [TimeSpan.FromMilliseconds(50)],
            CloneStagger = TimeSpan.FromMilliseconds(30), PacketsPerSecond = 100,
        });
        output.WriteLine(result.Describe());

        // The hot path holds its handshake until the randomness is reseeded (the notification),
        // then it leaves: new keys one round trip (2 ms on this wire) after it, plus a packet slot.
        Assert.All(result.Guests, g => Assert.InRange(g.ResumeToNewKey!.Value,
            TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50 + 2 + 10 + 1)));
    }

    [Fact(Skip = "fork guard: vmgenid and the virtio-rng leak each run the fork path, and the second PostVmFork clears "
        + "the handshake the first one started; peer B drops the second initiation (one per 20 ms per peer), so the "
        + "clone waits REKEY_TIMEOUT (5 s). Unskip once the guard keeps a handshake made after the first reseed.")]
    public void Both_clones_have_new_keys_one_round_trip_after_their_notification()
    {
        var result = ForkSimulation.Run(new ForkScenario
        {
            Seed = 1, Mode = ForkGuardMode.Both, Clones = 3, NotifyDelays = [TimeSpan.FromMilliseconds(50)],
            CloneStagger = TimeSpan.FromMilliseconds(30), PacketsPerSecond = 100,
        });
        output.WriteLine(result.Describe());

        Assert.All(result.Guests, g => Assert.InRange(g.ResumeToNewKey!.Value,
            TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50 + 2 + 10 + 1)));
    }
}
