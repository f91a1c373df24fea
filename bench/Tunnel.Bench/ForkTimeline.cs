using System.Diagnostics;
using System.Globalization;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// The fork reaction split into its steps, which one BenchmarkDotNet figure cannot show: from
/// <c>AddVmForkRandomness</c> to "every key zeroed" (the guard's "cleared every session" log
/// line, written right after <see cref="TunnelDevice.ClearAllSessions"/>), to the call's return
/// (the rekey is then queued), to the first new initiation handed to
/// <see cref="IDeviceIo.SendDatagram"/> and the last peer's: those are sent by the paced rekey
/// from <see cref="TunnelDevice.Tick"/>, which runs right after the return here with the virtual
/// clock moved straight to each slot (<see cref="GuardedDevice.DrainRekey"/>), so they are the
/// engine's work without the pacing's waits (1,000 peers are paced over 0.2 s). Stopwatch times over many repetitions (median, 90th percentile, minimum).
/// Same set-up as <see cref="ForkReactionBenchmarks"/>.
/// </summary>
internal static class ForkTimeline
{
    /// <summary>fork-timeline [--reps N]</summary>
    public static int Run(string[] args)
    {
        int reps = 200;
        if (args.Length == 2 && args[0] == "--reps" && int.TryParse(args[1], out int n) && n > 0)
            reps = n;
        else if (args.Length != 0)
        {
            Console.Error.WriteLine("usage: Tunnel.Bench fork-timeline [--reps N]");
            return 2;
        }

        Console.WriteLine($"fork-timeline: {reps} forks per case (after at least {reps / 10} warm-up forks and 1 s), times in microseconds from AddVmForkRandomness");
        Console.WriteLine();
        Console.WriteLine("| Mode     | Peers | Keys zeroed (median / p90 / min) | First initiation sent | Last initiation sent | Returned |");
        Console.WriteLine("|----------|------:|---------------------------------:|----------------------:|---------------------:|---------:|");
        foreach (ForkGuardMode mode in new[] { ForkGuardMode.Notifier, ForkGuardMode.Both })
        foreach (int peers in new[] { 1, 1_000 })
            Measure(mode, peers, peers == 1 ? reps : Math.Max(20, reps / 5));
        return 0;
    }

    private static void Measure(ForkGuardMode mode, int peerCount, int reps)
    {
        using var device = new GuardedDevice(mode);
        Peer[] peers = device.AddPeers(peerCount);
        var zeroed = new double[reps];
        var first = new double[reps];
        var last = new double[reps];
        var returned = new double[reps];
        // Warm up for at least a second as well as a tenth of the forks: tiered JIT promotes a
        // method only after ~100 ms of quiet, which a few fast 1-peer forks never give it.
        int warmup = Math.Max(2, reps / 10);
        long warmupUntil = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        for (int i = -warmup; i < reps; i++)
        {
            if (i == -1 && Stopwatch.GetTimestamp() < warmupUntil)
                i = -2; // keep warming up
            device.InstallKeypairs(peers);
            device.ResumeAsClone();
            long start = Stopwatch.GetTimestamp();
            device.Notify();
            long end = Stopwatch.GetTimestamp();
            device.DrainRekey();
            if (device.Io.Initiations != peerCount || device.Logger.ClearedTicks == 0)
                throw new InvalidOperationException($"fork reaction incomplete: {device.Io.Initiations} initiations for {peerCount} peers");
            device.A.ClearAllSessions();
            if (i < 0)
                continue;
            zeroed[i] = Micros(start, device.Logger.ClearedTicks);
            first[i] = Micros(start, device.Io.FirstInitiationTicks);
            last[i] = Micros(start, device.Io.LastInitiationTicks);
            returned[i] = Micros(start, end);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {mode,-8} | {peerCount,5:N0} | {Stats(zeroed),32} | {Stats(first),21} | {Stats(last),20} | {Median(returned),8:N1} |"));
    }

    private static double Micros(long from, long to) => (to - from) * 1e6 / Stopwatch.Frequency;

    private static double Median(double[] values)
    {
        double[] sorted = [.. values.Order()];
        return sorted[sorted.Length / 2];
    }

    private static string Stats(double[] values)
    {
        double[] sorted = [.. values.Order()];
        return string.Create(CultureInfo.InvariantCulture,
            $"{sorted[sorted.Length / 2]:N1} / {sorted[(int)(sorted.Length * 0.9)]:N1} / {sorted[0]:N1}");
    }
}
