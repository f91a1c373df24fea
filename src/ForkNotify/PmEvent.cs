namespace ForkNotify;

/// <summary>
/// The actions sent on the PM notifier chain. Values 1..6 are Linux's <c>PM_*</c> events from
/// <c>include/linux/suspend.h</c>; <see cref="PostVmFork"/> is ours: Linux has no such PM event
/// (it signals VM fork on a separate chain with action 0, see docs/FORKNOTIFY.md), and 7 is the
/// next free value after <c>PM_POST_RESTORE</c>.
/// </summary>
public enum PmEvent : ulong
{
    HibernationPrepare = 0x0001,
    PostHibernation = 0x0002,
    SuspendPrepare = 0x0003,
    PostSuspend = 0x0004,
    RestorePrepare = 0x0005,
    PostRestore = 0x0006,
    PostVmFork = 0x0007,
}
