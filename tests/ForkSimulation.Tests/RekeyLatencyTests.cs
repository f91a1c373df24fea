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

    [Theory]
    [InlineData(ForkGuardMode.Both)]
    [InlineData(ForkGuardMode.Notifier)]
    public void Pushed_clones_have_new_keys_soon_after_a_fork_signalled_twice(ForkGuardMode mode)
    {
        // Both devices signal the fork (vmgenid, then the virtio-rng leak): two PostVmFork, each
        // clearing every session, the second one the handshake the first just started. Peer B takes
        // one initiation per 20 ms from a peer, so the clone's second one leaves at the respacing
        // (40 ms) after the first instead of being refused and leaving the clone without keys for
        // REKEY_TIMEOUT (5 s).
        var result = ForkSimulation.Run(new ForkScenario
        {
            Seed = 1, Mode = mode, Clones = 3, NotifyDelays = [TimeSpan.FromMilliseconds(50)],
            // The clones share one identity and so B's per-peer initiation limit: 100 ms apart
            // leaves room for each clone's two initiations.
            CloneStagger = TimeSpan.FromMilliseconds(100), PacketsPerSecond = 100,
        });
        output.WriteLine(result.Describe());

        TimeSpan respacing = TimeSpan.FromTicks(Tunnel.Device.Constants.InitiationRespacingNanos / 100);
        Assert.All(result.Guests, g => Assert.InRange(g.ResumeToNewKey!.Value,
            TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(50 + 2 + 10 + 1) + respacing));
    }
}
