namespace ForkNotify;

/// <summary>
/// Where <see cref="VmGenIdSource"/> looks: physical memory and the firmware tables that say where
/// the ID is. The defaults are the real files; tests point them at a sparse file holding the ID page
/// at its physical offset and at table files with the real layouts.
/// </summary>
public sealed record VmGenIdPaths
{
    /// <summary>Physical memory, mapped one page at the ID's address.</summary>
    public string Memory { get; init; } = "/dev/mem";

    /// <summary>The ACPI tables as the firmware left them (<c>SSDT*</c> for QEMU, <c>DSDT</c> for Firecracker).</summary>
    public string AcpiTables { get; init; } = "/sys/firmware/acpi/tables";

    /// <summary>QEMU's <c>etc/vmgenid_addr</c> fw_cfg file (needs the <c>qemu_fw_cfg</c> module).</summary>
    public string FwCfgAddress { get; init; } = "/sys/firmware/qemu_fw_cfg/by_name/etc/vmgenid_addr/raw";

    /// <summary>The live device tree (aarch64 Firecracker puts a <c>vmgenid</c> node there).</summary>
    public string DeviceTree { get; init; } = "/sys/firmware/devicetree/base";
}
