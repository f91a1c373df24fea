namespace ForkSim.Tests;

/// <summary>
/// The required results of issue 6, one per mode, with fixed seeds. Each run prints its report
/// (the packets at risk, per-clone timings) to the test output.
/// </summary>
public class ForkModeTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Ms50 = TimeSpan.FromMilliseconds(50);

    private ForkScenarioResult Run(ForkScenario scenario)
    {
        var result = ForkSimulation.Run(scenario);
        output.WriteLine(result.Describe());
        return result;
    }

    [Theory]
    [InlineData(1UL, ForkPoint.Anywhere)]
    [InlineData(2UL, ForkPoint.BetweenEncryptAndTransmit)]
    public void Off_reuses_key_and_nonce_negative_control(ulong seed, ForkPoint point)
    {
        var result = Run(new ForkScenario { Seed = seed, Mode = ForkGuardMode.Off, ForkPoint = point, NotifyDelays = [Ms50] });

        Assert.True(result.HadSessionAtEvent);
        Assert.True(result.ReusedPairs > 0, "the detector must find reuse when nothing protects the keys");
        Assert.True(result.StalePackets > 0);
        Assert.All(result.Guests, g => Assert.Null(g.FirstNewKeyPacketAt));
    }

    [Fact]
    public void Notifier_without_reseeding_sends_identical_ephemerals_negative_control()
    {
        var unseeded = Run(new ForkScenario
        {
            Seed = 3, Mode = ForkGuardMode.Notifier, NotifyDelays = [Ms50], ReseedRandomOnFork = false,
        });
        var reseeded = Run(new ForkScenario { Seed = 3, Mode = ForkGuardMode.Notifier, NotifyDelays = [Ms50] });

        Assert.True(unseeded.IdenticalEphemerals > 0, "copied random state must show as identical ephemerals");
        Assert.Equal(0, reseeded.IdenticalEphemerals);
    }

    [Theory]
    [InlineData(4UL, 2, ForkPoint.Anywhere)]
    [InlineData(5UL, 5, ForkPoint.Anywhere)]
    [InlineData(6UL, 8, ForkPoint.BetweenEncryptAndTransmit)]
    public void Notifier_with_no_delay_reuses_nothing(ulong seed, int clones, ForkPoint point)
    {
        var result = Run(new ForkScenario
        {
            Seed = seed, Mode = ForkGuardMode.Notifier, Clones = clones, ForkPoint = point, NotifyDelays = [TimeSpan.Zero],
        });

        Assert.True(result.HadSessionAtEvent);
        Assert.Equal(0, result.ReusedPairs);
        Assert.Equal(0, result.StalePackets);
        Assert.All(result.Guests, g => Assert.Equal(g.ResumedAt, g.NotifiedAt));
    }

    [Theory]
    [InlineData(7UL, 10)]
    [InlineData(8UL, 50)]
    [InlineData(9UL, 200)]
    public void Notifier_with_a_delay_reuses_nonces_in_the_window(ulong seed, int delayMs)
    {
        var result = Run(new ForkScenario
        {
            Seed = seed, Mode = ForkGuardMode.Notifier, Clones = 3, PacketsPerSecond = 100,
            NotifyDelays = [TimeSpan.FromMilliseconds(delayMs)],
        });
        output.WriteLine($"push-model race, {delayMs} ms: {result.StalePackets} packets at risk (sent under copied keys), "
            + $"{result.ReusedPairs} (key, nonce) pairs reused by {result.ReusedPackets} packets");

        Assert.True(result.StalePackets > 0);
        Assert.True(result.ReusedPairs > 0, "the push model's window must show, not hide");
        // Every stale packet left inside the window, before the clone's notification.
        Assert.All(result.Guests, g => Assert.Equal(g.ResumedAt + TimeSpan.FromMilliseconds(delayMs), g.NotifiedAt));
    }

    [Theory]
    [InlineData(PullCounterKind.VmGenIdCtra, 0)]
    [InlineData(PullCounterKind.VmGenIdCtra, 50)]
    [InlineData(PullCounterKind.VmGenIdCtra, 1000)]
    [InlineData(PullCounterKind.CopyOnLeak, 0)]
    [InlineData(PullCounterKind.CopyOnLeak, 50)]
    [InlineData(PullCounterKind.CopyOnLeak, 1000)]
    public void HotPath_reuses_nothing_whatever_the_delay(PullCounterKind counter, int delayMs)
    {
        foreach (ForkPoint point in new[] { ForkPoint.Anywhere, ForkPoint.BetweenEncryptAndTransmit })
        {
            var result = Run(new ForkScenario
            {
                Seed = 10, Mode = ForkGuardMode.HotPath, PullCounter = counter, Clones = 4, ForkPoint = point,
                PacketsPerSecond = 100, NotifyDelays = [TimeSpan.FromMilliseconds(delayMs)],
            });

            Assert.True(result.HadSessionAtEvent);
            Assert.Equal(0, result.ReusedPairs);
            Assert.Equal(0, result.StalePackets);
            Assert.Equal(0, result.IdenticalEphemerals);
            Assert.True(result.HotPathDrops > 0, "the hot path must have stopped the copied keys");
            Assert.All(result.Guests, g => Assert.Equal(0, g.SessionsCleared));
        }
    }

    [Theory]
    [InlineData(11UL, PullCounterKind.VmGenIdCtra, 0)]
    [InlineData(12UL, PullCounterKind.VmGenIdCtra, 50)]
    [InlineData(13UL, PullCounterKind.CopyOnLeak, 200)]
    public void Both_reuses_nothing_and_rekeys_within_one_step_of_the_notification(ulong seed, PullCounterKind counter, int delayMs)
    {
        foreach (ForkPoint point in new[] { ForkPoint.Anywhere, ForkPoint.BetweenEncryptAndTransmit })
        {
            var result = Run(new ForkScenario
            {
                Seed = seed, Mode = ForkGuardMode.Both, PullCounter = counter, Clones = 3, ForkPoint = point,
                NotifyDelays = [TimeSpan.FromMilliseconds(delayMs)],
            });

            Assert.True(result.HadSessionAtEvent);
            Assert.Equal(0, result.ReusedPairs);
            Assert.Equal(0, result.StalePackets);
            Assert.All(result.Guests, g =>
            {
                Assert.NotNull(g.NotifiedAt);
                Assert.NotNull(g.FirstInitiationAt);
                // The notifier's handshake leaves in the notification's own event; none leaves
                // before it (the hot path waits for the reseeded randomness).
                Assert.InRange(g.FirstInitiationAt!.Value, g.NotifiedAt!.Value, g.NotifiedAt.Value + ForkSimulation.SchedulingStep);
                Assert.True(g.SessionsCleared > 0);
            });
        }
    }

    [Fact]
    public void A_datagram_sealed_before_the_snapshot_is_sent_identically_by_every_clone_without_a_guard()
    {
        var result = Run(new ForkScenario
        {
            Seed = 14, Mode = ForkGuardMode.Off, Clones = 3, ForkPoint = ForkPoint.BetweenEncryptAndTransmit,
            NotifyDelays = [Ms50],
        });

        Assert.True(result.SnapshotHeldPendingTransmit);
        // Three copies of one sealed datagram: a replay, told apart from a reuse.
        Assert.True(result.IdenticalResends >= 2);
    }

    [Fact]
    public void A_datagram_sealed_before_the_snapshot_is_dropped_by_the_hot_path()
    {
        var result = Run(new ForkScenario
        {
            Seed = 14, Mode = ForkGuardMode.HotPath, Clones = 3, ForkPoint = ForkPoint.BetweenEncryptAndTransmit,
            NotifyDelays = [Ms50],
        });

        Assert.True(result.SnapshotHeldPendingTransmit);
        Assert.Equal(0, result.IdenticalResends);
        Assert.Equal(0, result.StalePackets);
        Assert.All(result.Guests, g => Assert.True(g.HotPathDrops >= 1));
    }
}
