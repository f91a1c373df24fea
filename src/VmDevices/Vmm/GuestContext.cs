using ForkNotify;

namespace VmDevices;

/// <summary>
/// What a workload sees of the guest it runs in: that guest's kernel (chain, generation, random),
/// its pull counters, its clock and scheduler. Each clone has its own.
/// </summary>
public sealed class GuestContext
{
    private readonly SimulationTrace _trace;

    internal GuestContext(string name, bool isClone, ForkKernel kernel, IScheduler scheduler, SimulationTrace trace,
        IGenerationCounter? vmGenIdCounter, IGenerationCounter? leakCounter)
    {
        Name = name;
        IsClone = isClone;
        Kernel = kernel;
        Scheduler = scheduler;
        _trace = trace;
        VmGenIdCounter = vmGenIdCounter;
        LeakCounter = leakCounter;
        PullCounters = new[] { vmGenIdCounter, leakCounter }.OfType<IGenerationCounter>().ToArray();
    }

    public string Name { get; }

    /// <summary>True for a guest started from a snapshot.</summary>
    public bool IsClone { get; }

    public ForkKernel Kernel { get; }

    /// <summary>Guest-scoped: events scheduled here stop when the guest is destroyed.</summary>
    public IScheduler Scheduler { get; }

    public TimeSpan Now => Scheduler.Now;

    /// <summary>The vmgenid CTRA counter (32 bits), or null.</summary>
    public IGenerationCounter? VmGenIdCounter { get; }

    /// <summary>The virtio-rng copy-on-leak generation word, or null.</summary>
    public IGenerationCounter? LeakCounter { get; }

    /// <summary>Every hypervisor-updated pull counter this guest has (possibly none).</summary>
    public IReadOnlyList<IGenerationCounter> PullCounters { get; }

    /// <summary>Adds a line to the simulation trace under this guest's name.</summary>
    public void Record(string what) => _trace.Record(Name, what);
}
