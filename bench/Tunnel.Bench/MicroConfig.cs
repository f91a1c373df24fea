using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;

namespace Tunnel.Bench;

/// <summary>
/// The default configuration of this suite: one short job, so that every micro-benchmark together
/// finishes in a few minutes on a 2-core machine. BenchmarkDotNet's own default job (15+
/// iterations of ~0.5 s, adaptive) would take tens of minutes for the same set.
/// </summary>
/// <remarks>
/// Per benchmark case: one process, a pilot stage that sizes an invocation batch to
/// <see cref="IterationTimeMilliseconds"/>, <see cref="WarmupCount"/> warm-up iterations, then
/// <see cref="IterationCount"/> measured ones. Ten 150 ms iterations give a mean with a margin of
/// error of a few percent on a quiet machine; on a loaded one, read the Error and StdDev columns
/// before trusting a small difference. 150 ms rather than 100 ms because BenchmarkDotNet warns
/// about any iteration under 100 ms, which a loaded machine otherwise produces. For a careful
/// run, pass <c>--job default</c> (or any other job) on the command line: Program then uses
/// BenchmarkDotNet's defaults with that job instead of this one.
/// </remarks>
public sealed class MicroConfig : ManualConfig
{
    public const int WarmupCount = 3;
    public const int IterationCount = 10;
    public const int IterationTimeMilliseconds = 150;

    public static readonly Job Short = Job.Default
        .WithId("Short")
        .WithLaunchCount(1)
        .WithWarmupCount(WarmupCount)
        .WithIterationCount(IterationCount)
        .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(IterationTimeMilliseconds));

    public MicroConfig()
    {
        Add(DefaultConfig.Instance);
        AddJob(Short);
        // Every class also carries [MemoryDiagnoser]; adding it here as well costs nothing (the
        // config de-duplicates it) and keeps "Allocated" in the table even for a new class that forgets.
        AddDiagnoser(MemoryDiagnoser.Default);
        AddColumn(StatisticColumn.OperationsPerSecond);
        WithOrderer(new BenchmarkDotNet.Order.DefaultOrderer(BenchmarkDotNet.Order.SummaryOrderPolicy.Declared));
    }
}
