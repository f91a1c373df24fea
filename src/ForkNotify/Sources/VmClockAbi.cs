namespace ForkNotify;

/// <summary>
/// Offsets and constants of <c>struct vmclock_abi</c> (Linux <c>include/uapi/linux/vmclock-abi.h</c>),
/// all fields little-endian. Only what a generation reader needs; the clock fields are listed for
/// the layout's sake (and so a test can write a faithful page).
/// </summary>
public static class VmClockAbi
{
    public const uint Magic = 0x4b4c4356; // "VCLK"
    public const int PageSize = 4096;

    public const int MagicOffset = 0x00;              // __le32 magic
    public const int SizeOffset = 0x04;               // __le32 size of the region
    public const int VersionOffset = 0x08;            // __le16 version (1)
    public const int CounterIdOffset = 0x0a;          // __u8 counter_id
    public const int TimeTypeOffset = 0x0b;           // __u8 time_type
    public const int SeqCountOffset = 0x0c;           // __le32 seq_count, odd = update in progress
    public const int DisruptionMarkerOffset = 0x10;   // __le64 disruption_marker
    public const int FlagsOffset = 0x18;              // __le64 flags
    public const int ClockStatusOffset = 0x22;        // __u8 clock_status (after __u8 pad[2])
    public const int CounterValueOffset = 0x28;       // __le64 counter_value
    public const int TimeSecOffset = 0x48;            // __le64 time_sec
    public const int VmGenerationCounterOffset = 0x68; // __le64 vm_generation_counter
    /// <summary>sizeof(struct vmclock_abi).</summary>
    public const int StructSize = 0x70;

    public const ulong FlagTimeMonotonic = 1UL << 7;
    /// <summary>The hypervisor bumps <c>vm_generation_counter</c> on every load from a snapshot.</summary>
    public const ulong FlagVmGenCounterPresent = 1UL << 8;
    /// <summary>The device raises a notification on changes, so <c>poll()</c> works.</summary>
    public const ulong FlagNotificationPresent = 1UL << 9;

    /// <summary>Reads give up after this many attempts to find an even, unchanged seq_count (AWS-LC's cap).</summary>
    public const int SeqlockMaxRetries = 1024;
}
