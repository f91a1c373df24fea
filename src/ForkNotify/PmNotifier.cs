using Microsoft.Extensions.Logging;

namespace ForkNotify;

/// <summary>
/// The PM notifier chain (<c>pm_chain_head</c> of <c>kernel/power/main.c</c>), with our
/// <see cref="PmEvent.PostVmFork"/> event on it.
/// </summary>
public sealed class PmNotifier
{
    public PmNotifier(ILogger? logger = null)
    {
        Chain = new BlockingNotifierChain(logger, "pm chain");
    }

    /// <summary>The underlying chain, for callers needing <c>nr_to_call</c> or raw actions.</summary>
    public BlockingNotifierChain Chain { get; }

    /// <summary><c>register_pm_notifier</c>: 0 or -EEXIST.</summary>
    public int Register(NotifierBlock block) => Chain.Register(block);

    /// <summary><c>unregister_pm_notifier</c>: 0 or -ENOENT.</summary>
    public int Unregister(NotifierBlock block) => Chain.Unregister(block);

    /// <summary>
    /// <c>pm_notifier_call_chain_robust</c>: the robust call, converted to an errno (0 on success;
    /// note Stop rolls back yet returns 0, as in the kernel).
    /// </summary>
    public int CallChainRobust(PmEvent up, PmEvent down) =>
        Notifier.ToErrno(Chain.CallChainRobust((ulong)up, (ulong)down));

    /// <summary><c>pm_notifier_call_chain</c>.</summary>
    public NotifyResult CallChain(PmEvent ev) => Chain.CallChain((ulong)ev);
}
