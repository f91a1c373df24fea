using Tunnel.Device;

namespace ForkSim.Tests;

/// <summary>
/// Issue 14's adversarial simulation: a snapshot at every point where the engine reads the pull
/// counter, draws randomness or hands a datagram to the network, during a handshake and a few
/// hundred packets; 2 and 3 clones; notification delays 0 and 20 ms; both host-entropy models.
/// Every sweep is a fixed-seed, deterministic run. Required: HotPath and Both reuse no (key,
/// nonce) pair and send no ephemeral or index twice in different messages, at every point. The
/// negative controls must find the fault.
/// </summary>
[Trait("Category", "Adversarial")]
public sealed class AdversarialTests(ITestOutputHelper output)
{
    private const int Packets = 100;

    private static readonly TimeSpan Delayed = TimeSpan.FromMilliseconds(20);

    private static AdversarialScenario Scenario(ForkGuardMode mode, HostEntropyModel entropy, int clones, bool delayed) => new()
    {
        Seed = 14,
        Mode = mode,
        Entropy = entropy,
        Clones = clones,
        NotifyDelay = delayed ? Delayed : TimeSpan.Zero,
        Packets = Packets,
    };

    /// <summary>Runs every point of <paramref name="kind"/>; returns the faulty results (and how many ran).</summary>
    private (List<AdversarialResult> Faults, int Points, int Recovered) Sweep(AdversarialScenario scenario, ForkPointKind? kind,
        bool stopAtFirstFault = false)
    {
        IReadOnlyList<ForkPointId> points = AdversarialSimulation.EnumeratePoints(scenario);
        var faults = new List<AdversarialResult>();
        ForkPointId[] selected = points.Where(p => kind is not { } k || p.Kind == k).ToArray();
        int ran = selected.Length, recovered = 0;
        // Each run is a deterministic function of (scenario, point), so they may run in parallel.
        Parallel.ForEach(selected, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
            (point, state) =>
            {
                AdversarialResult r = AdversarialSimulation.Run(scenario, point);
                lock (faults)
                {
                    if (r.ClonesWithNewKeys > 0)
                        recovered++;
                    if (r.Faulty)
                    {
                        faults.Add(r);
                        if (stopAtFirstFault)
                            state.Stop();
                    }
                }
            });
        faults.Sort((a, b) => (a.Point.Step, a.Point.Observation).CompareTo((b.Point.Step, b.Point.Observation)));
        output.WriteLine($"{scenario}: {ran} points{(kind is null ? "" : $" of kind {kind}")} of {points.Count}, {faults.Count} faulty, {recovered} with a new session");
        foreach (AdversarialResult f in faults.Take(5))
            output.WriteLine($"  {f}");
        return (faults, ran, recovered);
    }

    public static TheoryData<ForkGuardMode, HostEntropyModel, int, bool, ForkPointKind> Required()
    {
        var data = new TheoryData<ForkGuardMode, HostEntropyModel, int, bool, ForkPointKind>();
        foreach (ForkGuardMode mode in new[] { ForkGuardMode.HotPath, ForkGuardMode.Both })
        foreach (HostEntropyModel entropy in Enum.GetValues<HostEntropyModel>())
        foreach (int clones in new[] { 2, 3 })
        foreach (bool delayed in new[] { false, true })
        foreach (ForkPointKind kind in Enum.GetValues<ForkPointKind>())
            data.Add(mode, entropy, clones, delayed, kind);
        return data;
    }

    [Theory]
    [MemberData(nameof(Required))]
    public void Every_point_reuses_no_key_nonce_and_repeats_no_ephemeral_or_index(ForkGuardMode mode, HostEntropyModel entropy,
        int clones, bool delayed, ForkPointKind kind)
    {
        (List<AdversarialResult> faults, int points, int recovered) = Sweep(Scenario(mode, entropy, clones, delayed), kind);
        Assert.True(points > 0);
        Assert.Empty(faults);
        // Not vacuous: clones do rekey and send under new keys.
        Assert.True(recovered > 0, "no clone ever got a new session");
    }

    [Fact]
    public void The_sweep_covers_the_handshake_and_every_packet()
    {
        IReadOnlyList<ForkPointId> points = AdversarialSimulation.EnumeratePoints(Scenario(ForkGuardMode.Both, HostEntropyModel.PerGuest, 2, false));
        output.WriteLine($"{points.Count} points: " + string.Join(", ",
            points.GroupBy(p => p.Kind).Select(g => $"{g.Count()} {g.Key}")));
        Assert.True(points.Count(p => p.Kind == ForkPointKind.Transmit) >= Packets);
        Assert.True(points.Count(p => p.Kind == ForkPointKind.CounterRead) >= Packets);
        Assert.Contains(points, p => p.Kind == ForkPointKind.RandomDraw);
    }

    // ---- negative controls: each must find the fault ----

    [Theory]
    [InlineData(ForkGuardMode.Off, 2, false)]
    [InlineData(ForkGuardMode.Off, 3, false)]
    [InlineData(ForkGuardMode.Notifier, 2, true)]
    [InlineData(ForkGuardMode.Notifier, 3, true)]
    public void Without_the_hot_path_the_sweep_finds_reuse(ForkGuardMode mode, int clones, bool delayed)
    {
        // Off never clears; Notifier clears only when the (delayed) notification arrives.
        (List<AdversarialResult> faults, _, _) = Sweep(Scenario(mode, HostEntropyModel.PerGuest, clones, delayed),
            ForkPointKind.Transmit, stopAtFirstFault: true);
        Assert.Contains(faults, f => f.ReusedPairs > 0);
    }

    /// <summary>The three switches of issue 14, each undoing one fix.</summary>
    public enum Control
    {
        /// <summary>The reseed gate off, under shared entropy: clones rekey from identical generators.</summary>
        GateOff,

        /// <summary>The two-read handshake path: the snapshot at the second read (the index was
        /// drawn before it, every clone's) makes a copied handshake tagged with the clone's generation.</summary>
        TwoReads,

        /// <summary>The unique-input rule off, shared entropy, no hwrng: the gate opens on identical generators.</summary>
        UniqueInputRuleOff,
    }

    public static TheoryData<Control, ForkGuardMode, int> Controls()
    {
        var data = new TheoryData<Control, ForkGuardMode, int>();
        foreach (Control control in Enum.GetValues<Control>())
        foreach (ForkGuardMode mode in new[] { ForkGuardMode.HotPath, ForkGuardMode.Both })
        foreach (int clones in new[] { 2, 3 })
            data.Add(control, mode, clones);
        return data;
    }

    [Theory]
    [MemberData(nameof(Controls))]
    public void Negative_control_finds_the_fault(Control control, ForkGuardMode mode, int clones)
    {
        (AdversarialScenario scenario, ForkPointKind kind) = control switch
        {
            Control.GateOff => (Scenario(mode, HostEntropyModel.SharedUntilKernelReseed, clones, delayed: true) with { GateOff = true },
                ForkPointKind.Transmit),
            Control.TwoReads => (Scenario(mode, HostEntropyModel.PerGuest, clones, delayed: true) with { TwoReads = true },
                ForkPointKind.CounterRead),
            _ => (Scenario(mode, HostEntropyModel.SharedUntilKernelReseed, clones, delayed: false)
                with { UniqueInputRuleOff = true, HwRng = false }, ForkPointKind.Transmit),
        };
        (List<AdversarialResult> faults, _, _) = Sweep(scenario, kind, stopAtFirstFault: true);
        Assert.NotEmpty(faults);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Without_a_clone_unique_input_the_rule_holds_handshakes_and_nothing_repeats(int clones)
    {
        // The same scenario as the control above with the rule on: no fault, and no new session
        // either (the trade-off: safety over availability until a unique input arrives).
        AdversarialScenario s = Scenario(ForkGuardMode.Both, HostEntropyModel.SharedUntilKernelReseed, clones, delayed: false)
            with { HwRng = false };
        (List<AdversarialResult> faults, _, int recovered) = Sweep(s, ForkPointKind.Transmit);
        Assert.Empty(faults);
        Assert.Equal(0, recovered);
    }
}
