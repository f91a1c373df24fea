namespace VmDevices;

/// <summary>
/// The slice of an ACPI namespace device a driver uses: its IDs, <c>_STA</c>, named objects that
/// evaluate to a package of integers (<c>ADDR</c>, <c>CTRA</c>), and the path its
/// <c>Notify(device, code)</c> takes (acpi_install_notify_handler).
/// </summary>
public interface IAcpiDevice
{
    /// <summary><c>_HID</c>.</summary>
    string HardwareId { get; }

    /// <summary><c>_CID</c>, or null.</summary>
    string? CompatibleId { get; }

    /// <summary><c>_STA</c>: 0x0F = present, enabled, shown, functioning.</summary>
    uint EvaluateStatus();

    /// <summary>Evaluates a named object to a package of integers; false if it does not exist.</summary>
    bool TryEvaluatePackage(string name, out ulong[] package);

    /// <summary>Where <c>Notify</c> on this device is delivered.</summary>
    InterruptLine NotifyLine { get; }
}
