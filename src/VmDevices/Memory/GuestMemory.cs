using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace VmDevices;

/// <summary>
/// Guest-physical memory: bytes with addresses starting at 0. Devices (VMM side) and drivers (guest
/// side) reach each other only through it and through interrupts, as real ones do. Every access is
/// bounds-checked; an access outside is refused (the call returns false) and reported as a
/// <see cref="GuestMemoryFault"/>, never thrown, because the VMM must survive a hostile guest.
/// Multi-byte values are little-endian, as virtio 1.x and ACPI define them.
/// </summary>
public sealed class GuestMemory
{
    /// <summary>Only the first faults are kept: a hostile guest must not be able to grow VMM memory.</summary>
    public const int MaxRecordedFaults = 256;

    private readonly byte[] _bytes;
    private readonly List<GuestMemoryFault> _faults = new();
    private long _faultCount;

    public GuestMemory(int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        _bytes = new byte[size];
    }

    public ulong Size => (ulong)_bytes.Length;

    /// <summary>Raised for every refused access, on the thread that attempted it.</summary>
    public event Action<GuestMemoryFault>? Faulted;

    /// <summary>The first <see cref="MaxRecordedFaults"/> refused accesses.</summary>
    public IReadOnlyList<GuestMemoryFault> Faults => _faults;

    /// <summary>Every refused access, including those no longer recorded.</summary>
    public long FaultCount => Interlocked.Read(ref _faultCount);

    /// <summary>True when [address, address + length) lies inside guest memory (no overflow).</summary>
    public bool Contains(ulong address, ulong length) => length <= Size && address <= Size - length;

    /// <summary>Bounds check that reports: true when the range is inside, otherwise a fault is recorded.</summary>
    public bool Check(ulong address, ulong length, GuestMemoryAccess access, string source)
    {
        if (Contains(address, length))
            return true;
        Report(new GuestMemoryFault(address, length, access, source));
        return false;
    }

    public bool TryRead(ulong address, Span<byte> destination, string source)
    {
        if (!Check(address, (ulong)destination.Length, GuestMemoryAccess.Read, source))
            return false;
        _bytes.AsSpan((int)address, destination.Length).CopyTo(destination);
        return true;
    }

    public bool TryWrite(ulong address, ReadOnlySpan<byte> source, string who)
    {
        if (!Check(address, (ulong)source.Length, GuestMemoryAccess.Write, who))
            return false;
        source.CopyTo(_bytes.AsSpan((int)address, source.Length));
        return true;
    }

    /// <summary>Fills a range with zeroes (a driver clearing a buffer it hands to the device).</summary>
    public bool TryClear(ulong address, ulong length, string who)
    {
        if (!Check(address, length, GuestMemoryAccess.Write, who))
            return false;
        _bytes.AsSpan((int)address, (int)length).Clear();
        return true;
    }

    public bool TryReadUInt16(ulong address, out ushort value, string source)
    {
        Span<byte> b = stackalloc byte[2];
        bool ok = TryRead(address, b, source);
        value = ok ? BinaryPrimitives.ReadUInt16LittleEndian(b) : (ushort)0;
        return ok;
    }

    public bool TryReadUInt32(ulong address, out uint value, string source)
    {
        Span<byte> b = stackalloc byte[4];
        bool ok = TryRead(address, b, source);
        value = ok ? BinaryPrimitives.ReadUInt32LittleEndian(b) : 0u;
        return ok;
    }

    public bool TryReadUInt64(ulong address, out ulong value, string source)
    {
        Span<byte> b = stackalloc byte[8];
        bool ok = TryRead(address, b, source);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(b) : 0ul;
        return ok;
    }

    public bool TryWriteUInt16(ulong address, ushort value, string who)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        return TryWrite(address, b, who);
    }

    public bool TryWriteUInt32(ulong address, uint value, string who)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return TryWrite(address, b, who);
    }

    public bool TryWriteUInt64(ulong address, ulong value, string who)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return TryWrite(address, b, who);
    }

    /// <summary>
    /// A direct view of an already validated range: what a guest driver gets from memremap() once
    /// it has checked the mapping at probe time. Out-of-range arguments are a bug of the caller.
    /// </summary>
    internal Span<byte> Map(ulong address, int length) => _bytes.AsSpan(checked((int)address), length);

    /// <summary>
    /// One naturally aligned 32-bit load, the way a guest reads a counter page the hypervisor
    /// updates (a word-sized read happens all at once). The address must be validated and 4-aligned.
    /// </summary>
    internal uint VolatileReadUInt32(ulong address) =>
        Volatile.Read(ref Unsafe.As<byte, uint>(ref _bytes[checked((int)address)]));

    /// <summary>One naturally aligned 64-bit load; the address must be validated and 8-aligned.</summary>
    internal ulong VolatileReadUInt64(ulong address) =>
        Volatile.Read(ref Unsafe.As<byte, ulong>(ref _bytes[checked((int)address)]));

    /// <summary>A copy of every byte: what a snapshot stores.</summary>
    public byte[] Capture() => _bytes.ToArray();

    /// <summary>Loads a captured image (same size) into this memory.</summary>
    public void Restore(ReadOnlySpan<byte> image)
    {
        if (image.Length != _bytes.Length)
            throw new ArgumentException($"image is {image.Length} bytes, guest memory is {_bytes.Length}", nameof(image));
        image.CopyTo(_bytes);
    }

    private void Report(GuestMemoryFault fault)
    {
        lock (_faults)
        {
            _faultCount++;
            if (_faults.Count < MaxRecordedFaults)
                _faults.Add(fault);
        }
        Faulted?.Invoke(fault);
    }
}
