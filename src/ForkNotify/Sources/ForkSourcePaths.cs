namespace ForkNotify;

/// <summary>
/// Where the host sources live. The defaults are the real devices; tests point them at files in
/// the same binary format (a VMClock page, a kmsg-format log, sysgenid FIFOs, a
/// sparse "physical memory" file with a vmgenid page and its ACPI tables).
/// </summary>
public sealed record ForkSourcePaths
{
    public string VmClock { get; init; } = "/dev/vmclock0";

    public string SysGenId { get; init; } = "/dev/sysgenid";

    /// <summary>TEST ONLY: a separate acknowledgement FIFO (see <see cref="SysGenIdSource"/>); null for the device.</summary>
    public string? SysGenIdAck { get; init; }

    public string Kmsg { get; init; } = "/dev/kmsg";

    /// <summary>Physical memory and the firmware tables for <see cref="VmGenIdSource"/>.</summary>
    public VmGenIdPaths VmGenId { get; init; } = new();
}
