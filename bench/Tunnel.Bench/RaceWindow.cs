using System.Diagnostics;
using System.Globalization;
using ForkSim;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// The race window (issue 7): sweeps the clones' notification delay against the packet rate for
/// each fork-guard mode through the fork simulation (tools/ForkSim), a few seeds each, and writes
/// one CSV row per scenario: packets the clones sent under the snapshot's keys (stale), and the
/// (key, nonce) pairs they reused. bench/race-window.sh runs it and draws docs/race-window.png.
/// </summary>
/// <remarks>
/// Each scenario: the guest boots and A handshakes with B, A sends at the given rate (B answers
/// each packet), and at <see cref="EventAt"/> (shifted by a seeded fraction of a packet interval,
/// so seeds see the fork at different phases of the traffic) the VMM snapshots it and restores
/// <see cref="Clones"/> clones, each notified (vmgenid and virtio-rng) after the delay. The run
/// ends <see cref="RunAfterEvent"/> later: past the longest delay plus a handshake round trip.
/// Virtual time, so the results do not depend on the machine or its load.
/// </remarks>
internal static class RaceWindow
{
    public static readonly double[] DelaysMs = [0, 1, 5, 10, 20, 50, 100, 200];
    public static readonly double[] Rates = [100, 1_000, 10_000];
    public static readonly ForkGuardMode[] Modes = [ForkGuardMode.Notifier, ForkGuardMode.HotPath, ForkGuardMode.Both];
    public const int Clones = 2;
    public static readonly TimeSpan EventAt = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan RunAfterEvent = TimeSpan.FromMilliseconds(600);

    private const string Header =
        "mode,delay_ms,rate_pps,seed,clones,had_session,stale_packets,stale_per_clone,reused_pairs,reused_packets,"
        + "identical_resends,hotpath_drops,identical_ephemerals,handshake_nonce_reuse,clones_rekeyed,best_resume_to_new_key_ms";

    /// <summary>race-window [--out FILE] [--seeds N] [--quick] [--describe]</summary>
    public static int Run(string[] args)
    {
        string output = "race-window.csv";
        int seeds = 3;
        bool quick = false, describe = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--out" when i + 1 < args.Length: output = args[++i]; break;
                case "--seeds" when i + 1 < args.Length && int.TryParse(args[i + 1], out int n) && n > 0: seeds = n; i++; break;
                case "--quick": quick = true; break;
                case "--describe": describe = true; break;
                default:
                    Console.Error.WriteLine("usage: Tunnel.Bench race-window [--out FILE] [--seeds N] [--quick] [--describe]");
                    return 2;
            }
        }
        double[] delays = quick ? [0, 10, 100] : DelaysMs;
        double[] rates = quick ? [100, 1_000] : Rates;

        var total = Stopwatch.StartNew();
        using var writer = new StreamWriter(output);
        writer.WriteLine(Header);
        int done = 0, count = Modes.Length * rates.Length * delays.Length * seeds;
        foreach (ForkGuardMode mode in Modes)
        foreach (double rate in rates)
        foreach (double delay in delays)
        for (int seed = 1; seed <= seeds; seed++)
        {
            ForkScenarioResult r = ForkSimulation.Run(Scenario(mode, rate, delay, seed));
            writer.WriteLine(Row(mode, rate, delay, seed, r));
            writer.Flush();
            done++;
            if (describe)
                Console.Write(r.Describe());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"[{done}/{count} {total.Elapsed.TotalSeconds:0}s] {mode,-8} {rate,6} pkt/s delay {delay,3} ms seed {seed}: stale {r.StalePackets}, reused pairs {r.ReusedPairs}"));
        }
        Console.WriteLine($"wrote {output} ({count} scenarios, {total.Elapsed.TotalSeconds:0} s)");
        return 0;
    }

    public static ForkScenario Scenario(ForkGuardMode mode, double rate, double delayMs, int seed)
    {
        // A seeded phase within one packet interval: where the snapshot falls between two packets.
        double phaseMs = 1000.0 / rate * ((seed * 0.618034) % 1.0);
        return new ForkScenario
        {
            Seed = (ulong)seed,
            Mode = mode,
            PullCounter = PullCounterKind.VmGenIdCtra,
            Event = ForkEventKind.Fork,
            Clones = Clones,
            NotifyDelays = [TimeSpan.FromMilliseconds(delayMs)],
            EventAt = EventAt + TimeSpan.FromMilliseconds(phaseMs),
            PacketsPerSecond = rate,
            RunAfterEvent = RunAfterEvent,
        };
    }

    private static string Row(ForkGuardMode mode, double rate, double delay, int seed, ForkScenarioResult r) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{mode},{delay},{rate},{seed},{r.Scenario.Clones},{(r.HadSessionAtEvent ? 1 : 0)},{r.StalePackets},"
            + $"{(double)r.StalePackets / r.Scenario.Clones:0.##},{r.ReusedPairs},{r.ReusedPackets},{r.IdenticalResends},"
            + $"{r.HotPathDrops},{r.IdenticalEphemerals},{r.HandshakeNonceReuse},"
            + $"{r.Guests.Count(g => g.FirstNewKeyPacketAt is not null)},"
            + $"{(r.BestResumeToNewKey is { } t ? t.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture) : "")}");
}
