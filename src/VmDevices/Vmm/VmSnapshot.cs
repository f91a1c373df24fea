using ForkNotify;

namespace VmDevices;

/// <summary>
/// Everything a real snapshot copies: guest memory, the device models, the drivers' and the
/// kernel's private state (kernel memory in a real guest), latched interrupts, and every workload's
/// state. Immutable once taken; any number of clones start from it.
/// </summary>
public sealed class VmSnapshot
{
    internal VmSnapshot(string sourceName, TimeSpan takenAt, GuestConfig config, byte[] memory, ulong heapNext,
        ForkKernelState kernel, VmGenIdDeviceState? vmGenId, VmGenIdDriverState? vmGenIdDriver,
        VirtioRngDeviceState? rng, VirtioRngDriverState? rngDriver, uint[] pendingVmGenIdNotify,
        uint[] pendingRngInterrupts, object[] workloadStates)
    {
        SourceName = sourceName;
        TakenAt = takenAt;
        Config = config;
        Memory = memory;
        HeapNext = heapNext;
        Kernel = kernel;
        VmGenId = vmGenId;
        VmGenIdDriver = vmGenIdDriver;
        Rng = rng;
        RngDriver = rngDriver;
        PendingVmGenIdNotify = pendingVmGenIdNotify;
        PendingRngInterrupts = pendingRngInterrupts;
        WorkloadStates = workloadStates;
    }

    public string SourceName { get; }

    public TimeSpan TakenAt { get; }

    public GuestConfig Config { get; }

    /// <summary>The guest memory image.</summary>
    public ReadOnlySpan<byte> MemoryImage => Memory;

    public IReadOnlyList<object> Workloads => WorkloadStates;

    internal byte[] Memory { get; }
    internal ulong HeapNext { get; }
    internal ForkKernelState Kernel { get; }
    internal VmGenIdDeviceState? VmGenId { get; }
    internal VmGenIdDriverState? VmGenIdDriver { get; }
    internal VirtioRngDeviceState? Rng { get; }
    internal VirtioRngDriverState? RngDriver { get; }
    internal uint[] PendingVmGenIdNotify { get; }
    internal uint[] PendingRngInterrupts { get; }
    internal object[] WorkloadStates { get; }
}
