namespace VmDevices;

/// <summary>
/// The split virtqueue layout of virtio 1.x (section 2.7 "Split Virtqueues"), little-endian:
/// a descriptor table of 16-byte entries {addr u64, len u32, flags u16, next u16} (16-aligned),
/// the available ring {flags u16, idx u16, ring[size] u16, used_event u16} (2-aligned) and the used
/// ring {flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16} (4-aligned).
/// </summary>
public static class Virtq
{
    public const ulong DescriptorSize = 16;
    public const ulong DescriptorAlignment = 16;
    public const ulong AvailAlignment = 2;
    public const ulong UsedAlignment = 4;
    public const ulong UsedElementSize = 8;

    /// <summary>The largest queue size virtio allows.</summary>
    public const ushort MaxSize = 32768;

    /// <summary>VIRTQ_DESC_F_NEXT: the buffer continues in the <c>next</c> field.</summary>
    public const ushort DescFlagNext = 1;

    /// <summary>VIRTQ_DESC_F_WRITE: device-writable (otherwise device-readable).</summary>
    public const ushort DescFlagWrite = 2;

    /// <summary>VIRTQ_DESC_F_INDIRECT: not offered by our devices, so a guest using it is refused.</summary>
    public const ushort DescFlagIndirect = 4;

    /// <summary>VIRTQ_AVAIL_F_NO_INTERRUPT: the driver polls this queue.</summary>
    public const ushort AvailFlagNoInterrupt = 1;

    public static ulong DescriptorTableSize(ushort size) => DescriptorSize * size;

    public static ulong AvailRingSize(ushort size) => 6 + 2ul * size;

    public static ulong UsedRingSize(ushort size) => 6 + UsedElementSize * size;

    public static bool IsValidSize(ushort size) => size != 0 && size <= MaxSize && (size & (size - 1)) == 0;

    // Field offsets inside the rings.
    internal const ulong RingFlags = 0;
    internal const ulong RingIdx = 2;
    internal const ulong RingEntries = 4;
    internal const ulong DescAddr = 0;
    internal const ulong DescLen = 8;
    internal const ulong DescFlags = 12;
    internal const ulong DescNext = 14;
}

/// <summary>One buffer of a descriptor chain as the driver offers it.</summary>
public readonly record struct VirtqBuffer(ulong Address, uint Length, bool DeviceWritable);

/// <summary>Where a queue's three parts live in guest memory.</summary>
public readonly record struct VirtqAddresses(ushort Size, ulong DescriptorTable, ulong AvailRing, ulong UsedRing);
