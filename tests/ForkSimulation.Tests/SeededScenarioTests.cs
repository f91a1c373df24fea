namespace ForkSim.Tests;

/// <summary>
/// Many seeded scenarios (clones, delays, fork points, packet rates, both pull counters, staggered
/// clones) against the invariants of each mode. The default run keeps a fast subset; the Long
/// category runs over a thousand.
/// </summary>
public class SeededScenarioTests(ITestOutputHelper output)
{
    private const ulong Family = 2026;

    [Fact]
    public void Fast_subset_of_seeded_scenarios_keeps_every_invariant() => RunFamily(count: 52);

    [Fact]
    [Trait("Category", "Long")]
    public void Thousand_seeded_scenarios_keep_every_invariant() => RunFamily(count: 1200);

    [Fact]
    public void Same_scenario_same_result()
    {
        for (int i = 0; i < 8; i++)
        {
            ForkScenario scenario = ScenarioGenerator.Create(Family, i);
            string first = ForkSimulation.Run(scenario).Fingerprint;
            string second = ForkSimulation.Run(scenario).Fingerprint;
            Assert.Equal(first, second);
            string otherSeed = ForkSimulation.Run(scenario with { Seed = scenario.Seed + 1 }).Fingerprint;
            Assert.NotEqual(first, otherSeed);
        }
    }

    private void RunFamily(int count)
    {
        var offWithReuse = 0;
        var offEligible = 0;
        var notifierDelayedWithReuse = 0;
        var failures = new List<string>();
        var totals = new Dictionary<ForkGuardMode, (int Runs, long Stale, long Reused, int Ephemerals, int HandshakeReuse)>();
        for (int i = 0; i < count; i++)
        {
            ForkScenario scenario = ScenarioGenerator.Create(Family, i);
            ForkScenarioResult result = ForkSimulation.Run(scenario);
            totals.TryGetValue(scenario.Mode, out var t);
            totals[scenario.Mode] = (t.Runs + 1, t.Stale + result.StalePackets, t.Reused + result.ReusedPairs,
                t.Ephemerals + result.IdenticalEphemerals, t.HandshakeReuse + result.HandshakeNonceReuse);

            string? broken = CheckInvariants(result);
            if (broken is not null)
                failures.Add($"#{i}: {broken}\n{result.Describe()}");

            bool delayed = Enumerable.Range(0, scenario.Clones).Any(c => scenario.NotifyDelayOf(c) > TimeSpan.Zero);
            if (scenario.Mode == ForkGuardMode.Off && result.HadSessionAtEvent)
            {
                offEligible++;
                if (result.ReusedPairs > 0)
                    offWithReuse++;
            }
            if (scenario.Mode == ForkGuardMode.Notifier && delayed && result.ReusedPairs > 0)
                notifierDelayedWithReuse++;
        }

        foreach (var (mode, t) in totals.OrderBy(kv => kv.Key))
            output.WriteLine($"{mode,-8}: {t.Runs} runs, {t.Stale} packets under copied keys, {t.Reused} (key, nonce) pairs reused, {t.Ephemerals} shared ephemerals ({t.HandshakeReuse} with a reused handshake nonce)");
        output.WriteLine($"Off: reuse detected in {offWithReuse} of {offEligible} runs with a live session at the fork");
        output.WriteLine($"Notifier with a delay: reuse in {notifierDelayedWithReuse} runs");
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        // The negative control as a rate: the detector must see what an unprotected fork does.
        Assert.True(offWithReuse * 10 >= offEligible * 9, $"reuse detected in only {offWithReuse} of {offEligible} unprotected forks");
        Assert.True(notifierDelayedWithReuse > 0);
    }

    /// <summary>What must hold in every scenario of a mode; null when it does.</summary>
    private static string? CheckInvariants(ForkScenarioResult r)
    {
        ForkScenario s = r.Scenario;
        bool anyDelay = Enumerable.Range(0, s.Clones).Any(c => s.NotifyDelayOf(c) > TimeSpan.Zero);
        switch (s.Mode)
        {
            case ForkGuardMode.HotPath or ForkGuardMode.Both when r.ReusedPairs != 0 || r.StalePackets != 0:
                return $"{s.Mode}: {r.ReusedPairs} reused pairs, {r.StalePackets} stale packets";
            // The hot path sees the fork before the randomness is reseeded: it must hold its
            // handshake back until then, or the clones' handshakes are copies.
            case ForkGuardMode.HotPath or ForkGuardMode.Both when r.IdenticalEphemerals != 0 || r.HandshakeNonceReuse != 0:
                return $"{s.Mode}: {r.IdenticalEphemerals} shared ephemerals, {r.HandshakeNonceReuse} handshake nonces reused";
            case ForkGuardMode.Notifier when !anyDelay && (r.ReusedPairs != 0 || r.StalePackets != 0):
                return $"Notifier without delay: {r.ReusedPairs} reused pairs, {r.StalePackets} stale packets";
            case ForkGuardMode.Notifier or ForkGuardMode.Both:
                foreach (GuestOutcome g in r.Guests)
                {
                    if (g.NotifiedAt != g.ResumedAt + s.NotifyDelayOf(int.Parse(g.Name["clone".Length..]) - 1))
                        return $"{g.Name} notified at {g.NotifiedAt}, resumed {g.ResumedAt}";
                    if (g.SessionsCleared == 0)
                        return $"{g.Name}: sessions never cleared";
                }
                break;
        }
        // Any reuse comes from packets under copied keys: reuse without stale packets would be a
        // miscount by the observer.
        if (r.ReusedPairs > 0 && r.StalePackets == 0)
            return "reuse without stale packets";
        return null;
    }
}
