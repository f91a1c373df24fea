namespace Tunnel.Device;

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
