namespace VmDevices;

/// <summary>
/// The guest kernel's allocator for memory it shares with devices (rings, buffers, counter pages),
/// reduced to a bump pointer: drivers allocate only when they probe, and never free. Its one word of
/// state is guest state, so a snapshot captures it.
/// </summary>
public sealed class GuestHeap
{
    private readonly ulong _end;

    public GuestHeap(GuestMemory memory, ulong start, ulong end)
    {
        if (start == 0 || start > end || end > memory.Size)
            throw new ArgumentOutOfRangeException(nameof(end), "heap must lie inside guest memory and not start at 0");
        Start = start;
        _end = end;
        Next = start;
    }

    public ulong Start { get; }

    /// <summary>The first free address.</summary>
    public ulong Next { get; private set; }

    /// <summary>
    /// Allocates <paramref name="size"/> bytes aligned to <paramref name="alignment"/> (a power of
    /// two) and returns the guest-physical address, or 0 when the heap is exhausted (like a kernel
    /// allocator returning NULL; address 0 is never inside the heap).
    /// </summary>
    public ulong Allocate(ulong size, ulong alignment)
    {
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignment), "alignment must be a power of two");
        ulong address = (Next + alignment - 1) & ~(alignment - 1);
        if (address < Next || address > _end || size > _end - address)
            return 0;
        Next = address + size;
        return address;
    }

    internal void Restore(ulong next)
    {
        if (next < Start || next > _end)
            throw new ArgumentOutOfRangeException(nameof(next));
        Next = next;
    }
}
