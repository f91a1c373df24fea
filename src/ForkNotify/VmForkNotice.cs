namespace ForkNotify;

/// <summary>
/// The data of a <see cref="PmEvent.PostVmFork"/> call from <see cref="ForkKernel"/>'s fork path:
/// what the reseed that precedes the call was for.
/// </summary>
/// <param name="PullGeneration">The pull counter as read once, before the reseed began (0 without
/// one). A snapshot after that read gives a clone whose counter has moved past it, so a gate keyed
/// to this value stays shut in the clone; a read after the reseed would open it on copied state.</param>
/// <param name="CloneUnique">Whether the reseed took in an input that differs between clones of one
/// snapshot (a new vmgenid ID, host entropy from /dev/hwrng or a fill-on-leak, getrandom after the
/// kernel's own fork reseed). Without one, sibling clones may hold identical generators.</param>
/// <param name="Source">What signalled the fork, for logs.</param>
public sealed record VmForkNotice(ulong PullGeneration, bool CloneUnique, string Source = "");
