namespace ForkNotify;

/// <summary>
/// The part of a <see cref="ForkKernel"/> a VM snapshot copies: the generation, the random state
/// and the last VM ID seen. Chain registrations are not in it: they belong to the code that is
/// running, which the snapshot's owner restores separately.
/// </summary>
public sealed class ForkKernelState
{
    internal ForkKernelState(ulong generation, ForkSafeRandomState random, byte[]? lastVmId)
    {
        Generation = generation;
        Random = random;
        LastVmId = lastVmId;
    }

    public ulong Generation { get; }

    public ForkSafeRandomState Random { get; }

    internal byte[]? LastVmId { get; }

    /// <summary>The last VM ID the kernel saw (a copy), or null if none yet.</summary>
    public byte[]? GetLastVmId() => LastVmId is null ? null : (byte[])LastVmId.Clone();
}
