using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>
/// Seeded random scenarios for bulk runs: every mode, 2 to 8 clones, per-clone notification delays
/// from 0 to 250 ms, event points early (handshake in flight) and late, both fork points, packet
/// rates from 5 to 200 per second, both pull counters, sometimes staggered clones.
/// </summary>
public static class ScenarioGenerator
{
    private static readonly ForkGuardMode[] Modes =
        [ForkGuardMode.Off, ForkGuardMode.Notifier, ForkGuardMode.HotPath, ForkGuardMode.Both];

    private static readonly int[] DelaysMs = [0, 0, 1, 5, 20, 50, 100, 250];

    /// <summary>Scenario number <paramref name="index"/> of the family <paramref name="familySeed"/>;
    /// the mode cycles with the index so every mode gets a quarter of any range.</summary>
    public static ForkScenario Create(ulong familySeed, int index)
    {
        var r = new DeterministicEntropy(familySeed * 0x9E3779B97F4A7C15UL ^ (ulong)index);
        int Next(int n) => (int)(r.NextUInt64() % (ulong)n);

        int clones = 2 + Next(7);
        bool allZero = Next(4) == 0;
        var delays = new TimeSpan[clones];
        for (int i = 0; i < clones; i++)
            delays[i] = allZero ? TimeSpan.Zero : TimeSpan.FromMilliseconds(DelaysMs[Next(DelaysMs.Length)]);
        double[] rates = [5, 20, 50, 100, 200];
        return new ForkScenario
        {
            Seed = familySeed * 1_000_003UL + (ulong)index,
            Mode = Modes[index % Modes.Length],
            PullCounter = Next(2) == 0 ? PullCounterKind.VmGenIdCtra : PullCounterKind.CopyOnLeak,
            Clones = clones,
            NotifyDelays = delays,
            // Mostly with a session in place; 1 in 8 early enough to catch the first handshake in flight.
            EventAt = Next(8) == 0
                ? TimeSpan.FromTicks((long)(r.NextUInt64() % (ulong)TimeSpan.FromMilliseconds(30).Ticks))
                : TimeSpan.FromMilliseconds(100 + Next(2900)) + TimeSpan.FromTicks(Next(10_000)),
            ForkPoint = Next(2) == 0 ? ForkPoint.Anywhere : ForkPoint.BetweenEncryptAndTransmit,
            PacketsPerSecond = rates[Next(rates.Length)],
            CloneStagger = Next(3) == 0 ? TimeSpan.FromMilliseconds(Next(40)) : TimeSpan.Zero,
            RunAfterEvent = TimeSpan.FromSeconds(2),
        };
    }
}
