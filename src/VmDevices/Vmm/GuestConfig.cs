namespace VmDevices;

/// <summary>The machine a guest runs on: its memory size, its devices and its workloads.</summary>
public sealed record GuestConfig
{
    /// <summary>Guest memory holds only device structures (rings, ID pages); 64 KiB is plenty and cheap to copy.</summary>
    public int MemorySize { get; init; } = 64 * 1024;

    public bool VmGenId { get; init; } = true;

    /// <summary>Adds the CTRA counter page to vmgenid.</summary>
    public bool VmGenIdCounter { get; init; } = true;

    /// <summary>The boot ID as QEMU's <c>guid=</c> text, or null for a fresh random one.</summary>
    public string? VmGenIdGuid { get; init; }

    public bool VirtioRng { get; init; } = true;

    /// <summary>Whether the virtio-rng device offers VIRTIO_RNG_F_LEAK.</summary>
    public bool OfferEntropyLeak { get; init; } = true;

    public ushort RngQueueSize { get; init; } = 8;

    public IReadOnlyList<GuestWorkloadFactory> Workloads { get; init; } = [];

    // The guest-physical memory map: page 0 stays unused so a null address never hits anything.
    internal const ulong VmGenIdBlobAddress = 0x1000;
    internal const ulong HeapStart = 0x3000;
}

/// <summary>How a snapshot is taken.</summary>
public sealed record SnapshotOptions
{
    /// <summary>
    /// Signal an entropy leak to the source guest after saving, as Chalios' QEMU patch does from
    /// post_save: the source keeps running while copies of its state exist.
    /// </summary>
    public bool SignalLeakOnSave { get; init; } = true;

    public TimeSpan LeakOnSaveInterruptDelay { get; init; }
}

/// <summary>How a clone starts from a snapshot.</summary>
public sealed record RestoreOptions
{
    public string? Name { get; init; }

    /// <summary>Virtual (or real) time between resume and the guest handling Notify(0x80).</summary>
    public TimeSpan VmGenIdNotifyDelay { get; init; }

    /// <summary>Time between resume and the guest handling the virtio-rng leak interrupt.</summary>
    public TimeSpan LeakInterruptDelay { get; init; }

    /// <summary>The clone's new 16-byte ID; null for a fresh one from the VMM (seeded in deterministic mode).</summary>
    public byte[]? VmGenerationId { get; init; }

    /// <summary>Restore with the snapshot's ID (QEMU without guid=auto): the notify is then spurious.</summary>
    public bool KeepVmGenerationId { get; init; }

    /// <summary>False: vmgenid writes the new ID and counter but never notifies (a lost
    /// notification; only the pull counters can then see the fork).</summary>
    public bool DeliverVmGenIdNotify { get; init; } = true;

    /// <summary>Signal the virtio-rng entropy leak on load (post_load).</summary>
    public bool SignalEntropyLeak { get; init; } = true;
}
