using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using ForkNotify;

namespace TestSupport;

/// <summary>
/// A file holding one page laid out exactly as <c>struct vmclock_abi</c>, and a "hypervisor" that
/// updates it through a shared mapping under the seqcount protocol, as Firecracker's
/// <c>do_post_restore()</c> does.
/// </summary>
/// <remarks>
/// Shared test source: compiled into every test project that needs a VMClock page (a test
/// project cannot reference another's code), through a linked Compile item.
/// </remarks>
internal sealed unsafe class VmClockPageFile : IDisposable
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _page;

    public VmClockPageFile(string path, ulong flags, ulong generation, uint magic = VmClockAbi.Magic)
    {
        Path = path;
        var page = new byte[VmClockAbi.PageSize];
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(VmClockAbi.MagicOffset), magic);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(VmClockAbi.SizeOffset), VmClockAbi.PageSize);
        BinaryPrimitives.WriteUInt16LittleEndian(page.AsSpan(VmClockAbi.VersionOffset), 1);
        page[VmClockAbi.CounterIdOffset] = 1; // VMCLOCK_COUNTER_X86_TSC
        page[VmClockAbi.TimeTypeOffset] = 0;  // VMCLOCK_TIME_UTC
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(VmClockAbi.SeqCountOffset), 2);
        BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(VmClockAbi.DisruptionMarkerOffset), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(VmClockAbi.FlagsOffset), flags);
        page[VmClockAbi.ClockStatusOffset] = 2; // VMCLOCK_STATUS_SYNCHRONIZED
        BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(VmClockAbi.TimeSecOffset), 1_763_700_000);
        BinaryPrimitives.WriteUInt64LittleEndian(page.AsSpan(VmClockAbi.VmGenerationCounterOffset), generation);
        System.IO.File.WriteAllBytes(path, page);

        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.ReadWrite);
        _view = _file.CreateViewAccessor(0, VmClockAbi.PageSize, MemoryMappedFileAccess.ReadWrite);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _page = p + _view.PointerOffset;
    }

    public string Path { get; }

    private ref uint Seq => ref *(uint*)(_page + VmClockAbi.SeqCountOffset);
    private ref ulong Generation => ref *(ulong*)(_page + VmClockAbi.VmGenerationCounterOffset);
    private ref ulong Disruption => ref *(ulong*)(_page + VmClockAbi.DisruptionMarkerOffset);

    /// <summary>Firecracker's post-restore update: seq odd, marker+1, generation+1, seq even.</summary>
    public void PostRestore()
    {
        Volatile.Write(ref Seq, Seq | 1);
        Interlocked.MemoryBarrier();
        Disruption++;
        Generation++;
        Interlocked.MemoryBarrier();
        Volatile.Write(ref Seq, Seq + 1);
    }

    /// <summary>
    /// Writes <paramref name="value"/> into both 32-bit halves of the counter, one half at a time,
    /// with a pause between them: a reader ignoring the seqcount would see low != high.
    /// </summary>
    public void TornUpdate(uint value)
    {
        Volatile.Write(ref Seq, Seq + 1); // odd
        Interlocked.MemoryBarrier();
        uint* halves = (uint*)(_page + VmClockAbi.VmGenerationCounterOffset);
        Volatile.Write(ref halves[0], value);
        Thread.SpinWait(20);
        Volatile.Write(ref halves[1], value);
        Interlocked.MemoryBarrier();
        Volatile.Write(ref Seq, Seq + 1); // even
    }

    /// <summary>Leaves the seqcount odd, as a hypervisor that died mid-update would.</summary>
    public void WedgeOdd() => Volatile.Write(ref Seq, Seq | 1);

    public void Unwedge() => Volatile.Write(ref Seq, (Seq | 1) + 1);

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
