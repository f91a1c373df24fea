using System.Buffers.Binary;

namespace VmDevices;

/// <summary>
/// The device's view of one split virtqueue (QEMU's VirtQueue): it pops descriptor chains the
/// driver made available and pushes them to the used ring. Everything it reads came from the guest
/// and is validated: indexes below the queue size, chains no longer than the queue (so a loop ends),
/// every buffer inside guest memory, readable buffers before writable ones, no indirect descriptors.
/// </summary>
internal sealed class DeviceVirtqueue
{
    private readonly GuestMemory _memory;
    private readonly string _source;
    private VirtqBuffer[] _segments = [];

    public DeviceVirtqueue(GuestMemory memory, string source)
    {
        _memory = memory;
        _source = source;
    }

    public VirtqAddresses Addresses { get; private set; }

    public bool Ready { get; private set; }

    /// <summary>Next available-ring slot the device will consume (free-running, wraps at 2^16).</summary>
    public ushort LastAvailIdx { get; private set; }

    /// <summary>The used index the device last published.</summary>
    public ushort UsedIdx { get; private set; }

    /// <summary>Buffers of the chain returned by the last successful <see cref="TryPop"/>.</summary>
    public ReadOnlySpan<VirtqBuffer> Segments => _segments.AsSpan(0, SegmentCount);

    public int SegmentCount { get; private set; }

    /// <summary>Accepts a queue layout if its size and alignment are legal and all of it lies in guest memory.</summary>
    public bool Configure(VirtqAddresses a)
    {
        if (!Virtq.IsValidSize(a.Size)
            || a.DescriptorTable % Virtq.DescriptorAlignment != 0
            || a.AvailRing % Virtq.AvailAlignment != 0
            || a.UsedRing % Virtq.UsedAlignment != 0)
            return false;
        if (!_memory.Check(a.DescriptorTable, Virtq.DescriptorTableSize(a.Size), GuestMemoryAccess.Read, _source)
            || !_memory.Check(a.AvailRing, Virtq.AvailRingSize(a.Size), GuestMemoryAccess.Read, _source)
            || !_memory.Check(a.UsedRing, Virtq.UsedRingSize(a.Size), GuestMemoryAccess.Write, _source))
            return false;
        Addresses = a;
        _segments = new VirtqBuffer[a.Size];
        LastAvailIdx = 0;
        UsedIdx = 0;
        Ready = true;
        return true;
    }

    public void Reset()
    {
        Ready = false;
        Addresses = default;
        LastAvailIdx = 0;
        UsedIdx = 0;
        SegmentCount = 0;
    }

    /// <summary>True when the driver asked not to be interrupted for this queue.</summary>
    public bool InterruptsSuppressed =>
        _memory.TryReadUInt16(Addresses.AvailRing + Virtq.RingFlags, out ushort flags, _source)
        && (flags & Virtq.AvailFlagNoInterrupt) != 0;

    /// <summary>
    /// Pops the next available chain into <see cref="Segments"/>. Returns <see cref="VirtqError.None"/>
    /// with <paramref name="head"/> set, or None with <paramref name="available"/> false when the ring
    /// is empty, or the error that makes the queue unusable.
    /// </summary>
    public VirtqError TryPop(out bool available, out ushort head, out string detail)
    {
        available = false;
        head = 0;
        detail = "";
        SegmentCount = 0;
        if (!Ready)
            return VirtqError.None;
        ushort size = Addresses.Size;
        if (!_memory.TryReadUInt16(Addresses.AvailRing + Virtq.RingIdx, out ushort availIdx, _source))
            return Fail(VirtqError.OutOfGuestMemory, "avail.idx", out detail);
        ushort pending = (ushort)(availIdx - LastAvailIdx);
        if (pending == 0)
            return VirtqError.None;
        if (pending > size)
            return Fail(VirtqError.BadAvailIndex, $"avail.idx moved from {LastAvailIdx} to {availIdx}", out detail);

        ulong slot = Addresses.AvailRing + Virtq.RingEntries + 2ul * (ulong)(LastAvailIdx % size);
        if (!_memory.TryReadUInt16(slot, out head, _source))
            return Fail(VirtqError.OutOfGuestMemory, "avail.ring", out detail);
        if (head >= size)
            return Fail(VirtqError.BadHeadIndex, $"head {head} >= size {size}", out detail);

        Span<byte> raw = stackalloc byte[(int)Virtq.DescriptorSize];
        ushort index = head;
        bool sawWritable = false;
        while (true)
        {
            if (SegmentCount == size)
                return Fail(VirtqError.DescriptorLoop, $"chain from head {head} is longer than the queue", out detail);
            if (!_memory.TryRead(Addresses.DescriptorTable + Virtq.DescriptorSize * index, raw, _source))
                return Fail(VirtqError.OutOfGuestMemory, "descriptor table", out detail);
            ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(raw);
            uint len = BinaryPrimitives.ReadUInt32LittleEndian(raw[(int)Virtq.DescLen..]);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(raw[(int)Virtq.DescFlags..]);
            ushort next = BinaryPrimitives.ReadUInt16LittleEndian(raw[(int)Virtq.DescNext..]);
            if ((flags & Virtq.DescFlagIndirect) != 0)
                return Fail(VirtqError.IndirectNotNegotiated, $"descriptor {index}", out detail);
            bool writable = (flags & Virtq.DescFlagWrite) != 0;
            if (!writable && sawWritable)
                return Fail(VirtqError.ReadableAfterWritable, $"descriptor {index}", out detail);
            sawWritable |= writable;
            var access = writable ? GuestMemoryAccess.Write : GuestMemoryAccess.Read;
            if (!_memory.Check(addr, len, access, _source))
                return Fail(VirtqError.OutOfGuestMemory, $"descriptor {index}: 0x{addr:x}+{len}", out detail);
            _segments[SegmentCount++] = new VirtqBuffer(addr, len, writable);
            if ((flags & Virtq.DescFlagNext) == 0)
                break;
            if (next >= size)
                return Fail(VirtqError.BadNextIndex, $"descriptor {index} next {next}", out detail);
            index = next;
        }
        LastAvailIdx++;
        available = true;
        return VirtqError.None;
    }

    /// <summary>Returns a chain to the driver: used.ring[used.idx % size] = {head, len}, then used.idx++.</summary>
    public bool PushUsed(ushort head, uint length)
    {
        ulong slot = Addresses.UsedRing + Virtq.RingEntries + Virtq.UsedElementSize * (ulong)(UsedIdx % Addresses.Size);
        if (!_memory.TryWriteUInt32(slot, head, _source) || !_memory.TryWriteUInt32(slot + 4, length, _source))
            return false;
        // The element is written before the index that publishes it (a release store on real hardware).
        UsedIdx++;
        return _memory.TryWriteUInt16(Addresses.UsedRing + Virtq.RingIdx, UsedIdx, _source);
    }

    public DeviceVirtqueueState Capture() => new(Addresses, Ready, LastAvailIdx, UsedIdx);

    public void Restore(DeviceVirtqueueState s)
    {
        Reset();
        if (!s.Ready || !Configure(s.Addresses))
            return;
        LastAvailIdx = s.LastAvailIdx;
        UsedIdx = s.UsedIdx;
    }

    private static VirtqError Fail(VirtqError error, string what, out string detail)
    {
        detail = what;
        return error;
    }
}

/// <summary>The migrated part of a device virtqueue (QEMU migrates the same: addresses and indexes).</summary>
public readonly record struct DeviceVirtqueueState(VirtqAddresses Addresses, bool Ready, ushort LastAvailIdx, ushort UsedIdx);
