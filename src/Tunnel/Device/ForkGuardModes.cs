namespace Tunnel.Device;

/// <summary>How a <see cref="TunnelDevice"/> protects its sessions against VM snapshot, restore and clone.</summary>
public enum ForkGuardMode
{
    /// <summary>No protection (the negative control).</summary>
    Off,

    /// <summary>
    /// Push: on PostVmFork, HibernationPrepare and SuspendPrepare clear every session (keys
    /// zeroed); after a fork start new handshakes at once. Racy: a clone runs, and may send, before
    /// the notification arrives.
    /// </summary>
    Notifier,

    /// <summary>
    /// Pull: every keypair records the pull counter; the send path checks it between encrypting
    /// and transmitting and drops what a stale keypair encrypted. Closes the race; rekeys lazily.
    /// </summary>
    HotPath,

    /// <summary>Both: the hot path closes the race, the notifier rekeys proactively.</summary>
    Both,
}

/// <summary>The names the command line and the UAPI use for a <see cref="ForkGuardMode"/>.</summary>
public static class ForkGuardModes
{
    /// <summary>Lowercase: <c>off</c>, <c>notifier</c>, <c>hotpath</c>, <c>both</c>.</summary>
    public static string Name(ForkGuardMode mode) => mode switch
    {
        ForkGuardMode.Off => "off",
        ForkGuardMode.Notifier => "notifier",
        ForkGuardMode.HotPath => "hotpath",
        ForkGuardMode.Both => "both",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, null),
    };

    /// <summary>Exactly one of the names <see cref="Name"/> gives.</summary>
    public static bool TryParse(string text, out ForkGuardMode mode)
    {
        foreach (var candidate in Enum.GetValues<ForkGuardMode>())
        {
            if (Name(candidate) == text)
            {
                mode = candidate;
                return true;
            }
        }
        mode = ForkGuardMode.Off;
        return false;
    }

    /// <summary>Whether the mode checks a pull counter on the send path (and so needs one).</summary>
    public static bool NeedsPullCounter(ForkGuardMode mode) => mode is ForkGuardMode.HotPath or ForkGuardMode.Both;
}
