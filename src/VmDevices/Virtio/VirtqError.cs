namespace VmDevices;

/// <summary>Why a device refused what a guest put in a virtqueue.</summary>
public enum VirtqError
{
    None = 0,

    /// <summary>The available index moved by more than the queue size.</summary>
    BadAvailIndex,

    /// <summary>A head index in the available ring is not below the queue size.</summary>
    BadHeadIndex,

    /// <summary>A descriptor's <c>next</c> is not below the queue size.</summary>
    BadNextIndex,

    /// <summary>A chain is longer than the queue: it loops (or is otherwise impossible).</summary>
    DescriptorLoop,

    /// <summary>A descriptor's buffer (or a ring) lies outside guest memory.</summary>
    OutOfGuestMemory,

    /// <summary>VIRTQ_DESC_F_INDIRECT used although VIRTIO_F_INDIRECT_DESC was not offered.</summary>
    IndirectNotNegotiated,

    /// <summary>A device-readable buffer follows a device-writable one (virtio 1.x 2.7.4.2).</summary>
    ReadableAfterWritable,
}

/// <summary>A refused virtqueue operation, as reported by a device.</summary>
public readonly record struct VirtioDeviceError(string Device, int Queue, VirtqError Error, string Detail)
{
    public override string ToString() => $"{Device} queue {Queue}: {Error} ({Detail})";
}
