namespace ForkNotify;

/// <summary>
/// What a notifier callback answers, with the values of <c>include/linux/notifier.h</c>. Any
/// value with <see cref="StopMask"/> set ends the walk of the chain; values other than these named
/// ones arise from <see cref="Notifier.FromErrno"/>.
/// </summary>
public enum NotifyResult : int
{
    /// <summary>Don't care.</summary>
    Done = 0x0000,
    /// <summary>Suits me.</summary>
    Ok = 0x0001,
    /// <summary>Don't call further.</summary>
    StopMask = 0x8000,
    /// <summary>Ok, and don't call further (undoes a robust call, yet reports success).</summary>
    Stop = Ok | StopMask,
    /// <summary>Veto: don't call further; maps to -EPERM.</summary>
    Bad = StopMask | 0x0002,
}
