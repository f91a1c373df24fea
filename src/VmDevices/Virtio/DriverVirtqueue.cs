using System.Buffers.Binary;

namespace VmDevices;

/// <summary>
/// The driver's side of one split virtqueue (Linux's vring_virtqueue): a free list of descriptors,
/// the shadow available index, the last used index seen. The device's answers (used ring entries)
/// are checked like Linux does (id below the size and actually in flight) and a bad one marks the
/// queue broken instead of corrupting the free list. A token (what the request was) is kept per head.
/// </summary>
public sealed class DriverVirtqueue
{
    private const ushort NoDescriptor = ushort.MaxValue;

    private readonly GuestMemory _memory;
    private readonly string _who;
    private readonly ushort[] _next;
    private readonly ushort[] _chainLength;
    private readonly ushort[] _token;
    private readonly bool[] _inFlight;
    private ushort _freeHead;

    public DriverVirtqueue(GuestMemory memory, VirtqAddresses addresses, string who)
    {
        if (!Virtq.IsValidSize(addresses.Size))
            throw new ArgumentOutOfRangeException(nameof(addresses), "queue size must be a power of two");
        _memory = memory;
        _who = who;
        Addresses = addresses;
        ushort n = addresses.Size;
        _next = new ushort[n];
        _chainLength = new ushort[n];
        _token = new ushort[n];
        _inFlight = new bool[n];
        for (int i = 0; i < n; i++)
            _next[i] = (ushort)(i + 1 < n ? i + 1 : NoDescriptor);
        _freeHead = 0;
        FreeCount = n;
        memory.TryClear(addresses.DescriptorTable, Virtq.DescriptorTableSize(n), who);
        memory.TryClear(addresses.AvailRing, Virtq.AvailRingSize(n), who);
        memory.TryClear(addresses.UsedRing, Virtq.UsedRingSize(n), who);
    }

    public VirtqAddresses Addresses { get; }

    public int FreeCount { get; private set; }

    /// <summary>Shadow of avail.idx: how many chains were ever made available (wraps at 2^16).</summary>
    public ushort AvailIdx { get; private set; }

    public ushort LastUsedIdx { get; private set; }

    /// <summary>Set when the device returned something impossible; the queue is then unusable.</summary>
    public bool Broken { get; private set; }

    /// <summary>Carves a queue's three parts out of the guest heap; null when it is exhausted.</summary>
    public static VirtqAddresses? Allocate(GuestHeap heap, ushort size)
    {
        ulong desc = heap.Allocate(Virtq.DescriptorTableSize(size), Virtq.DescriptorAlignment);
        ulong avail = heap.Allocate(Virtq.AvailRingSize(size), Virtq.AvailAlignment);
        ulong used = heap.Allocate(Virtq.UsedRingSize(size), Virtq.UsedAlignment);
        if (desc == 0 || avail == 0 || used == 0)
            return null;
        return new VirtqAddresses(size, desc, avail, used);
    }

    /// <summary>Asks the device not to interrupt for this queue (VIRTQ_AVAIL_F_NO_INTERRUPT).</summary>
    public void SuppressInterrupts(bool suppress) =>
        _memory.TryWriteUInt16(Addresses.AvailRing + Virtq.RingFlags,
            suppress ? Virtq.AvailFlagNoInterrupt : (ushort)0, _who);

    /// <summary>
    /// Writes <paramref name="chain"/> into free descriptors and makes it available. False when the
    /// queue has too few free descriptors (or is broken); nothing is changed then.
    /// </summary>
    public bool TryAdd(ReadOnlySpan<VirtqBuffer> chain, ushort token, out ushort head)
    {
        head = NoDescriptor;
        if (Broken || chain.IsEmpty || chain.Length > FreeCount)
            return false;
        head = _freeHead;
        Span<byte> raw = stackalloc byte[(int)Virtq.DescriptorSize];
        ushort index = head;
        for (int i = 0; i < chain.Length; i++)
        {
            bool last = i == chain.Length - 1;
            ushort flags = (ushort)((chain[i].DeviceWritable ? Virtq.DescFlagWrite : 0) | (last ? 0 : Virtq.DescFlagNext));
            BinaryPrimitives.WriteUInt64LittleEndian(raw, chain[i].Address);
            BinaryPrimitives.WriteUInt32LittleEndian(raw[(int)Virtq.DescLen..], chain[i].Length);
            BinaryPrimitives.WriteUInt16LittleEndian(raw[(int)Virtq.DescFlags..], flags);
            BinaryPrimitives.WriteUInt16LittleEndian(raw[(int)Virtq.DescNext..], last ? (ushort)0 : _next[index]);
            _memory.TryWrite(Addresses.DescriptorTable + Virtq.DescriptorSize * index, raw, _who);
            if (!last)
                index = _next[index];
        }
        _freeHead = _next[index];
        FreeCount -= chain.Length;
        _chainLength[head] = (ushort)chain.Length;
        _token[head] = token;
        _inFlight[head] = true;

        ulong slot = Addresses.AvailRing + Virtq.RingEntries + 2ul * (ulong)(AvailIdx % Addresses.Size);
        _memory.TryWriteUInt16(slot, head, _who);
        // The ring entry is written before the index that publishes it (virtio_wmb on real hardware).
        AvailIdx++;
        _memory.TryWriteUInt16(Addresses.AvailRing + Virtq.RingIdx, AvailIdx, _who);
        return true;
    }

    /// <summary>Takes the next completed chain off the used ring, returning its token and used length.</summary>
    public bool TryGetUsed(out ushort token, out uint length)
    {
        token = 0;
        length = 0;
        if (Broken || !_memory.TryReadUInt16(Addresses.UsedRing + Virtq.RingIdx, out ushort usedIdx, _who)
            || usedIdx == LastUsedIdx)
            return false;
        ulong slot = Addresses.UsedRing + Virtq.RingEntries + Virtq.UsedElementSize * (ulong)(LastUsedIdx % Addresses.Size);
        _memory.TryReadUInt32(slot, out uint id, _who);
        _memory.TryReadUInt32(slot + 4, out length, _who);
        if (id >= Addresses.Size || !_inFlight[id])
        {
            Broken = true; // Linux: "id %u is not a head!" -> BAD_RING
            return false;
        }
        LastUsedIdx++;
        token = _token[id];
        Detach((ushort)id);
        return true;
    }

    private void Detach(ushort head)
    {
        _inFlight[head] = false;
        ushort last = head;
        for (int i = 1; i < _chainLength[head]; i++)
            last = _next[last];
        _next[last] = _freeHead;
        _freeHead = head;
        FreeCount += _chainLength[head];
    }

    public DriverVirtqueueState Capture() =>
        new(_freeHead, FreeCount, AvailIdx, LastUsedIdx, Broken,
            (ushort[])_next.Clone(), (ushort[])_chainLength.Clone(), (ushort[])_token.Clone(), (bool[])_inFlight.Clone());

    /// <summary>Rebuilds a queue over restored guest memory without touching the rings.</summary>
    internal static DriverVirtqueue Restore(GuestMemory memory, VirtqAddresses addresses, DriverVirtqueueState s, string who)
    {
        var q = new DriverVirtqueue(memory, addresses, who, restoring: true);
        q._freeHead = s.FreeHead;
        q.FreeCount = s.FreeCount;
        q.AvailIdx = s.AvailIdx;
        q.LastUsedIdx = s.LastUsedIdx;
        q.Broken = s.Broken;
        s.Next.CopyTo(q._next, 0);
        s.ChainLength.CopyTo(q._chainLength, 0);
        s.Token.CopyTo(q._token, 0);
        s.InFlight.CopyTo(q._inFlight, 0);
        return q;
    }

    private DriverVirtqueue(GuestMemory memory, VirtqAddresses addresses, string who, bool restoring)
    {
        _ = restoring;
        _memory = memory;
        _who = who;
        Addresses = addresses;
        ushort n = addresses.Size;
        _next = new ushort[n];
        _chainLength = new ushort[n];
        _token = new ushort[n];
        _inFlight = new bool[n];
    }
}

/// <summary>The driver-private part of a queue (kernel memory in a real guest, so a snapshot copies it).</summary>
public sealed record DriverVirtqueueState(
    ushort FreeHead, int FreeCount, ushort AvailIdx, ushort LastUsedIdx, bool Broken,
    ushort[] Next, ushort[] ChainLength, ushort[] Token, bool[] InFlight);
