using System.Diagnostics;
using System.Globalization;
using ForkSim;
using Tunnel.Device;

namespace Tunneld;

/// <summary>
/// <c>tunneld demo</c>: the fork-safety demonstration, with no root and no second host. Peer B and
/// peer A run in this process and talk over real 127.0.0.1 UDP sockets; A runs inside an emulated
/// VM (vmgenid with its CTRA counter, virtio-rng with the entropy-leak queues) that is snapshotted
/// between an encryption and its transmission and forked into clones, once per guard mode and
/// notification delay. Time inside the simulation is virtual, so the run is quick and repeatable.
/// </summary>
internal static class DemoCommand
{
    private const string Usage = """
        Usage: tunneld demo [--clones N] [--seed S] [--delays MS,MS,...] [--rate PACKETS_PER_SECOND]
          --clones   clones started from the snapshot, 2-8 (default 3)
          --seed     scenario seed (default 1): same seed, same numbers
          --delays   notification delays in ms, time from a clone's resume to its kernel handling the
                     vmgenid notification (default 0,50)
          --rate     packets per second each side sends (default 100)
        """;

    private static readonly ForkGuardMode[] Modes =
        [ForkGuardMode.Off, ForkGuardMode.Notifier, ForkGuardMode.HotPath, ForkGuardMode.Both];

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        if (!TryParse(args, out int clones, out ulong seed, out TimeSpan[] delays, out double rate, out string? problem))
        {
            error.WriteLine($"tunneld demo: {problem}\n");
            error.WriteLine(Usage);
            return 2;
        }

        output.WriteLine("Fork-safety demo: peer A runs in an emulated VM (vmgenid + CTRA counter, virtio-rng with");
        output.WriteLine("entropy-leak queues); peer B runs outside it. They talk through 127.0.0.1 UDP sockets.");
        output.WriteLine($"The VM is snapshotted while a sealed packet waits to be sent, and forked into {clones} clones");
        output.WriteLine("that resume 30 ms apart and keep sending. A wire observer flags every (key, nonce) used");
        output.WriteLine("twice. Times are virtual (the VM is simulated), so runs are fast and repeatable.");
        output.WriteLine();

        var rows = new List<ForkScenarioResult>();
        int total = Modes.Length * delays.Length;
        var clock = Stopwatch.StartNew();
        foreach (ForkGuardMode mode in Modes)
        {
            foreach (TimeSpan delay in delays)
            {
                var scenario = new ForkScenario
                {
                    Seed = seed,
                    Mode = mode,
                    PullCounter = PullCounterKind.VmGenIdCtra,
                    Clones = clones,
                    NotifyDelays = [delay],
                    EventAt = TimeSpan.FromMilliseconds(1500),
                    ForkPoint = ForkPoint.BetweenEncryptAndTransmit,
                    PacketsPerSecond = rate,
                    // Clones of real VMs start one after another. The clones share one identity,
                    // so B's limit of one initiation per peer every 20 ms is shared too; 100 ms
                    // leaves room for each clone's two initiations (a fork is signalled twice, by
                    // vmgenid and by the virtio-rng leak, and the second clear respaces by 40 ms).
                    CloneStagger = TimeSpan.FromMilliseconds(100),
                    // Long enough to see a handshake retried after REKEY_TIMEOUT (5 s).
                    RunAfterEvent = TimeSpan.FromSeconds(8),
                };
                output.Write(string.Create(CultureInfo.InvariantCulture,
                    $"[{rows.Count + 1}/{total}] {mode,-8} notification delay {delay.TotalMilliseconds,4:0} ms ... "));
                output.Flush();
                long started = clock.ElapsedMilliseconds;
                ForkScenarioResult result = ForkSimulation.Run(scenario, new ForkSimulationOptions { LoopbackUdp = true });
                rows.Add(result);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{result.TransportPackets} transport packets over UDP, {result.ReusedPairs} reused pairs ({clock.ElapsedMilliseconds - started} ms)"));
            }
        }

        output.WriteLine();
        WriteTable(output, rows);
        output.WriteLine();
        output.WriteLine("stale packets:  data packets a clone sent after resuming under keys copied from the snapshot");
        output.WriteLine("reused pairs:   (key, nonce) pairs seen with two different ciphertexts: the XOR of the");
        output.WriteLine("                plaintexts and the Poly1305 one-time key leak (catastrophic)");
        output.WriteLine("same ephemeral: handshake ephemeral keys sent by two clones (copied random state)");
        output.WriteLine("resume->new key: per clone, resume to its first data packet under a key derived after the");
        output.WriteLine("                fork (fastest / slowest clone; 'never' = not within the 8 s observed)");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Finished in {clock.Elapsed.TotalSeconds:0.0} s."));

        // A protected mode that let a nonce be reused is a regression worth a failing exit code.
        bool protectedModeFailed = rows.Any(r => r.Scenario.Mode is ForkGuardMode.HotPath or ForkGuardMode.Both && r.ReusedPairs > 0);
        if (protectedModeFailed)
            error.WriteLine("tunneld demo: a protected mode reused a (key, nonce) pair");
        return protectedModeFailed ? 1 : 0;
    }

    private static void WriteTable(TextWriter output, List<ForkScenarioResult> rows)
    {
        string[] header = ["mode", "notify delay", "stale packets", "reused (key, nonce)", "same ephemeral", "resume->new key"];
        var cells = rows.Select(r => new[]
        {
            r.Scenario.Mode.ToString(),
            Ms(r.Scenario.NotifyDelays[0]),
            r.StalePackets.ToString(CultureInfo.InvariantCulture),
            r.ReusedPairs.ToString(CultureInfo.InvariantCulture),
            r.IdenticalEphemerals.ToString(CultureInfo.InvariantCulture),
            $"{Ms(r.BestResumeToNewKey)} / {Ms(r.Guests.Any(g => g.ResumeToNewKey is null) ? null : r.WorstResumeToNewKey)}",
        }).ToList();
        int[] widths = header.Select((h, i) => Math.Max(h.Length, cells.Max(c => c[i].Length))).ToArray();
        string Line(string[] c) => string.Join(" | ", c.Select((v, i) => i < 2 ? v.PadRight(widths[i]) : v.PadLeft(widths[i])));
        output.WriteLine(Line(header));
        output.WriteLine(string.Join("-+-", widths.Select(w => new string('-', w))));
        foreach (string[] c in cells)
            output.WriteLine(Line(c));
    }

    private static string Ms(TimeSpan? t) =>
        t is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalMilliseconds:0.#} ms") : "never";

    private static bool TryParse(string[] args, out int clones, out ulong seed, out TimeSpan[] delays, out double rate,
        out string? problem)
    {
        clones = 3;
        seed = 1;
        delays = [TimeSpan.Zero, TimeSpan.FromMilliseconds(50)];
        rate = 100;
        problem = null;
        for (int i = 0; i < args.Length; i++)
        {
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--clones" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out clones) && clones is >= 2 and <= 8:
                case "--seed" when ulong.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out seed):
                case "--rate" when double.TryParse(value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out rate) && rate is >= 1 and <= 10_000:
                    i++;
                    break;
                case "--delays" when TryParseDelays(value, out delays):
                    i++;
                    break;
                default:
                    problem = value is null && args[i].StartsWith("--", StringComparison.Ordinal)
                        ? $"{args[i]} needs a value"
                        : $"bad option or value '{args[i]}{(value is null ? "" : " " + value)}'";
                    return false;
            }
        }
        return true;
    }

    private static bool TryParseDelays(string? text, out TimeSpan[] delays)
    {
        delays = [];
        if (string.IsNullOrEmpty(text))
            return false;
        var list = new List<TimeSpan>();
        foreach (string part in text.Split(','))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int ms) || ms > 60_000)
                return false;
            list.Add(TimeSpan.FromMilliseconds(ms));
        }
        delays = [.. list];
        return list.Count > 0;
    }
}
