using ForkNotify;

namespace VmDevices.Tests;

/// <summary>A guest kernel wired to a deterministic clock, recording every PM event its chain sees.</summary>
internal sealed class KernelRig
{
    public KernelRig(ulong seed = 1)
    {
        Scheduler = new DeterministicScheduler(seed);
        Kernel = new ForkKernel(new byte[32], entropy: new DeterministicEntropy(seed));
        Kernel.Pm.Register(new NotifierBlock((_, action, _) =>
        {
            Events.Add(((PmEvent)action, Scheduler.Now, Kernel.Generation.Current));
            return NotifyResult.Ok;
        }));
    }

    public DeterministicScheduler Scheduler { get; }

    public ForkKernel Kernel { get; }

    public List<(PmEvent Event, TimeSpan At, ulong Generation)> Events { get; } = new();

    public int PostVmForkCount => Events.Count(e => e.Event == PmEvent.PostVmFork);
}
