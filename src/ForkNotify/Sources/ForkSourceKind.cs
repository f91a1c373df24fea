namespace ForkNotify;

/// <summary>The host mechanisms a guest can learn of a snapshot restore or clone from.</summary>
public enum ForkSourceKind
{
    /// <summary>No source: nothing ever reports a fork.</summary>
    None,

    /// <summary><c>/dev/vmclock0</c>: <see cref="VmClockSource"/>, a pull counter.</summary>
    VmClock,

    /// <summary><c>/dev/sysgenid</c>: <see cref="SysGenIdSource"/>.</summary>
    SysGenId,

    /// <summary><c>/dev/kmsg</c>: <see cref="KmsgSource"/>.</summary>
    Kmsg,

    /// <summary>The netlink uevent <c>NEW_VMGENID=1</c>: <see cref="UeventSource"/>.</summary>
    Uevent,

    /// <summary>The VM generation ID page through <c>/dev/mem</c>: <see cref="VmGenIdSource"/>, a pull counter.</summary>
    VmGenId,
}

/// <summary>The names the command line and the UAPI use for a <see cref="ForkSourceKind"/>.</summary>
public static class ForkSourceKinds
{
    /// <summary>Lowercase: <c>none</c>, <c>vmclock</c>, <c>sysgenid</c>, <c>kmsg</c>, <c>uevent</c>, <c>vmgenid</c>.</summary>
    public static string Name(ForkSourceKind kind) => kind switch
    {
        ForkSourceKind.None => "none",
        ForkSourceKind.VmClock => "vmclock",
        ForkSourceKind.SysGenId => "sysgenid",
        ForkSourceKind.Kmsg => "kmsg",
        ForkSourceKind.Uevent => "uevent",
        ForkSourceKind.VmGenId => "vmgenid",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>Exactly one of the names <see cref="Name"/> gives (case-sensitive, as the command line is).</summary>
    public static bool TryParse(string text, out ForkSourceKind kind)
    {
        foreach (ForkSourceKind candidate in Enum.GetValues<ForkSourceKind>())
        {
            if (Name(candidate) == text)
            {
                kind = candidate;
                return true;
            }
        }
        kind = ForkSourceKind.None;
        return false;
    }

    /// <summary>Whether the kind's source is also a pull counter a hot path can read.</summary>
    public static bool HasPullCounter(ForkSourceKind kind) => kind is ForkSourceKind.VmClock or ForkSourceKind.VmGenId;
}
