using BenchmarkDotNet.Attributes;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// The receive-side replay window (<see cref="ReplayFilter.ValidateCounter"/>), once per received
/// packet: counters arriving in order, counters arriving reordered within small bursts (what
/// parallel decryption and multi-queue links produce), and a duplicate, which is refused.
/// </summary>
/// <remarks>
/// The counter keeps growing across invocations, so the window slides as it does under traffic
/// and every in-order or reordered counter is new (all accepted, which Setup and the returned
/// value make sure of). Each invocation validates <see cref="Batch"/> counters; the table reports
/// the time per counter.
/// </remarks>
[MemoryDiagnoser]
public class ReplayFilterBenchmarks
{
    private const int Batch = 1024;
    private const int Burst = 16;
    private const ulong Limit = Constants.RejectAfterMessages;

    private readonly ReplayFilter _filter = new();
    private readonly int[] _reordered = new int[Batch]; // a permutation of 0..Batch-1 shuffled within each burst
    private ulong _next;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(7);
        for (int i = 0; i < Batch; i++)
            _reordered[i] = i;
        for (int start = 0; start < Batch; start += Burst)
            random.Shuffle(_reordered.AsSpan(start, Burst));

        if (InOrder() != Batch || Reordered() != Batch || Duplicate() != 0)
            throw new InvalidOperationException("The replay filter did not accept exactly the new counters.");
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int InOrder()
    {
        int accepted = 0;
        ulong first = _next;
        for (int i = 0; i < Batch; i++)
            accepted += _filter.ValidateCounter(first + (ulong)i, Limit) ? 1 : 0;
        _next = first + Batch;
        return accepted;
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int Reordered()
    {
        int accepted = 0;
        ulong first = _next;
        int[] order = _reordered;
        for (int i = 0; i < order.Length; i++)
            accepted += _filter.ValidateCounter(first + (ulong)order[i], Limit) ? 1 : 0;
        _next = first + Batch;
        return accepted;
    }

    /// <summary>The last <see cref="Batch"/> counters again: every one is a replay, refused.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int Duplicate()
    {
        int accepted = 0;
        ulong first = _next - Batch;
        for (int i = 0; i < Batch; i++)
            accepted += _filter.ValidateCounter(first + (ulong)i, Limit) ? 1 : 0;
        return accepted;
    }
}
