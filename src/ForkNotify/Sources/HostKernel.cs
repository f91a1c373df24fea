namespace ForkNotify;

/// <summary>
/// What the running kernel tells about its fork support, for choosing a source automatically: its
/// release, and whether the vmgenid driver is bound (without it the kernel neither logs a fork
/// line nor sends a uevent).
/// </summary>
public sealed record HostKernel(string Release, bool HasVmGenIdDriver)
{
    // drivers/virt/vmgenid.c registers as an ACPI driver before 6.10 and as a platform driver since
    // (device-tree support), so its sysfs directory is one of these.
    private static readonly string[] VmGenIdDriverDirectories =
    [
        "/sys/bus/platform/drivers/vmgenid",
        "/sys/bus/acpi/drivers/vmgenid",
    ];

    /// <summary>Reads <c>/proc/sys/kernel/osrelease</c> and sysfs; never throws.</summary>
    public static HostKernel Probe()
    {
        string release;
        try
        {
            release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            release = "unknown";
        }
        return new HostKernel(release, VmGenIdDriverDirectories.Any(Directory.Exists));
    }

    /// <summary>
    /// Only Linux 6.8 sent the vmgenid <c>change</c> uevent with <c>NEW_VMGENID=1</c> (merged for 6.8,
    /// reverted in mainline and in 6.8-stable in April 2024): on any other release that source is
    /// silent. (A late 6.8.y is silent too; the release string cannot tell, so 6.8 counts.)
    /// </summary>
    public bool SendsVmGenIdUevents =>
        Release.StartsWith("6.8.", StringComparison.Ordinal) || Release == "6.8"
        || Release.StartsWith("6.8-", StringComparison.Ordinal);
}
