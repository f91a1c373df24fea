using System.Diagnostics;
using System.Globalization;

namespace Tunnel.Bench;

/// <summary>
/// Issue 12, handshake cost: where a <see cref="HandshakeBenchmarks.FullHandshake"/> goes, step by
/// step, with Stopwatch (mean over N handshakes after a warm-up) and the bytes each step allocates
/// on this thread. <c>--loop</c> runs N handshakes with no timing at all, for instruction counts
/// under valgrind (the difference between two N cancels start-up and JIT).
/// </summary>
internal static class HandshakeSteps
{
    /// <summary>handshake-steps [--count N] [--loop]</summary>
    public static int Run(string[] args)
    {
        int count = 20_000;
        bool loop = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--count" && i + 1 < args.Length)
                count = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--loop")
                loop = true;
            else
            {
                Console.Error.WriteLine("usage: Tunnel.Bench handshake-steps [--count N] [--loop]");
                return 2;
            }
        }
        var bench = new HandshakeBenchmarks();
        bench.Setup();
        try
        {
            if (loop)
            {
                for (int i = 0; i < count; i++)
                    bench.FullHandshake();
                return 0;
            }
            for (int i = 0; i < 2_000; i++)
                bench.FullHandshake(); // tier-1 JIT everywhere before the timed run
            (string Name, Action Step)[] steps =
            [
                ("CreateInitiation + AddMacs", bench.CreateInitiation),
                ("CheckMac1 + ConsumeInitiation", bench.ConsumeInitiation),
                ("CreateResponse + AddMacs", bench.CreateResponse),
                ("CheckMac1 + ConsumeResponse", bench.ConsumeResponse),
                ("BeginSession x2 + Dispose", bench.BeginSessions),
            ];
            var ticks = new long[steps.Length];
            var bytes = new long[steps.Length];
            for (int i = 0; i < count; i++)
            {
                bench.NextSecond();
                for (int s = 0; s < steps.Length; s++)
                {
                    long allocated = GC.GetAllocatedBytesForCurrentThread();
                    long t0 = Stopwatch.GetTimestamp();
                    steps[s].Step();
                    ticks[s] += Stopwatch.GetTimestamp() - t0;
                    bytes[s] += GC.GetAllocatedBytesForCurrentThread() - allocated;
                }
            }
            Console.WriteLine("| Step | Mean (µs) | Share | Allocated (B) |");
            Console.WriteLine("|---|---:|---:|---:|");
            double total = ticks.Sum();
            for (int s = 0; s < steps.Length; s++)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {steps[s].Name} | {ticks[s] * 1e6 / Stopwatch.Frequency / count:N1} | {ticks[s] / total:P0} | {bytes[s] / (double)count:N0} |"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| Whole handshake | {total * 1e6 / Stopwatch.Frequency / count:N1} | 100 % | {bytes.Sum() / (double)count:N0} |"));
            return 0;
        }
        finally
        {
            bench.Cleanup();
        }
    }
}
