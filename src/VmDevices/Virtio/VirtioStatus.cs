namespace VmDevices;

/// <summary>The virtio device status field (virtio 1.x section 2.1).</summary>
[Flags]
public enum VirtioStatus : byte
{
    Reset = 0,
    Acknowledge = 1,
    Driver = 2,
    DriverOk = 4,
    FeaturesOk = 8,
    DeviceNeedsReset = 64,
    Failed = 128,
}

/// <summary>Feature bits shared by every virtio device.</summary>
public static class VirtioFeatures
{
    /// <summary>VIRTIO_F_VERSION_1 (bit 32): the modern interface; our devices require it.</summary>
    public const ulong Version1 = 1ul << 32;
}

/// <summary>Bits of the interrupt status register (ISR).</summary>
[Flags]
public enum VirtioInterrupt : uint
{
    None = 0,
    UsedBuffer = 1,
    ConfigChange = 2,
}
