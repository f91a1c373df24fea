using BenchmarkDotNet.Attributes;
using ForkNotify;
using VmDevices;

namespace Tunnel.Bench;

/// <summary>
/// The hot-path check on its own, as stage 2 of the send path does it (Transmit.cs): read the
/// device's counter field, call <see cref="IGenerationCounter.Read"/> through the interface, and
/// compare with the keypair's generation. 1024 checks per invocation (time per check shown), so
/// the figure is far above the timer's resolution and holds up on a loaded machine, where the
/// whole send path's noise (hundreds of ns) hides a difference of a few.
/// </summary>
/// <remarks>
/// <see cref="VmGeneration"/> is what the send-path benchmarks use (one volatile load);
/// <see cref="GuestCounterWord"/> is the emulated vmgenid CTRA word in guest memory (VmDevices:
/// bounds-checked volatile load from the guest's RAM), as the fork simulation reads it.
/// </remarks>
[MemoryDiagnoser]
public class PullCounterBenchmarks
{
    private const int Checks = 1024;
    private IGenerationCounter? _counter;
    private ulong _generation;

    [Params("VmGeneration", "GuestCounterWord")]
    public string Counter { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        if (Counter == "VmGeneration")
        {
            _counter = new VmGeneration(7);
        }
        else
        {
            var memory = new GuestMemory(4096);
            _counter = GuestCounterWord.Map32(memory, 64) ?? throw new InvalidOperationException("cannot map the counter");
        }
        _generation = _counter.Read();
    }

    [Benchmark(OperationsPerInvoke = Checks)]
    public int CheckGeneration()
    {
        int stale = 0;
        for (int i = 0; i < Checks; i++)
        {
            IGenerationCounter? counter = Volatile.Read(ref _counter);
            if (counter is not null && counter.Read() != _generation)
                stale++;
        }
        return stale;
    }
}
