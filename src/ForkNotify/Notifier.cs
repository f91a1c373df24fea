namespace ForkNotify;

/// <summary>
/// The errno conversions of <c>include/linux/notifier.h</c>, bit for bit, quirks included:
/// <c>FromErrno(-5)</c> is 0x8006 and converts back to -5; <see cref="NotifyResult.Bad"/> converts
/// to -EPERM; <see cref="NotifyResult.Stop"/> converts to 0 (success) although it stops the chain.
/// </summary>
public static class Notifier
{
    /// <summary><c>notifier_from_errno</c>: 0 becomes Ok, a negative errno becomes a stopping result.</summary>
    public static NotifyResult FromErrno(int err) =>
        err != 0
            ? (NotifyResult)((int)NotifyResult.StopMask | ((int)NotifyResult.Ok - err))
            : NotifyResult.Ok;

    /// <summary><c>notifier_to_errno</c>: the negative errno a result carries, or 0.</summary>
    public static int ToErrno(NotifyResult ret)
    {
        int value = (int)ret & ~(int)NotifyResult.StopMask;
        return value > (int)NotifyResult.Ok ? (int)NotifyResult.Ok - value : 0;
    }

    /// <summary>True when <paramref name="ret"/> has the stop bit, i.e. the chain walk ended there.</summary>
    public static bool Stops(NotifyResult ret) => ((int)ret & (int)NotifyResult.StopMask) != 0;
}
