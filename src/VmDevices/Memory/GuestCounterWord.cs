using ForkNotify;

namespace VmDevices;

/// <summary>
/// A generation counter that lives in guest memory and that the hypervisor updates while the guest
/// is paused: the vmgenid CTRA page (32 bits) or the virtio-rng copy-on-leak target (64 bits).
/// <see cref="Read"/> is one aligned load, so a hot path sees the new value from the first
/// instruction after resume: the pull model, with no race.
/// </summary>
public sealed class GuestCounterWord : IGenerationCounter
{
    private readonly GuestMemory _memory;
    private readonly bool _wide;

    private GuestCounterWord(GuestMemory memory, ulong address, bool wide)
    {
        _memory = memory;
        Address = address;
        _wide = wide;
    }

    public ulong Address { get; }

    /// <summary>Maps a 32-bit counter; null if it is misaligned or outside guest memory.</summary>
    public static GuestCounterWord? Map32(GuestMemory memory, ulong address) =>
        address % 4 == 0 && memory.Contains(address, 4) ? new GuestCounterWord(memory, address, wide: false) : null;

    /// <summary>Maps a 64-bit counter; null if it is misaligned or outside guest memory.</summary>
    public static GuestCounterWord? Map64(GuestMemory memory, ulong address) =>
        address % 8 == 0 && memory.Contains(address, 8) ? new GuestCounterWord(memory, address, wide: true) : null;

    public ulong Read() => _wide ? _memory.VolatileReadUInt64(Address) : _memory.VolatileReadUInt32(Address);
}
