namespace VmDevices;

/// <summary>Which way an access to guest memory went.</summary>
public enum GuestMemoryAccess
{
    Read,
    Write,
}

/// <summary>
/// An access to guest-physical memory that fell outside it. A VMM never trusts an address a guest
/// handed it (a descriptor, a ring base), so every such access is refused and reported with this,
/// instead of throwing out of the device model.
/// </summary>
public readonly record struct GuestMemoryFault(ulong Address, ulong Length, GuestMemoryAccess Access, string Source)
{
    public override string ToString() =>
        $"{Source}: {Access.ToString().ToLowerInvariant()} of {Length} bytes at 0x{Address:x} is outside guest memory";
}
