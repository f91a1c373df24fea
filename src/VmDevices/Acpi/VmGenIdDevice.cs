using ForkNotify;

namespace VmDevices;

/// <summary>
/// The VM Generation ID device as QEMU builds it (hw/acpi/vmgenid.c, docs/specs/vmgenid.rst),
/// with the HID Linux and Firecracker use and Amazon's optional generation counter:
/// <list type="bullet">
/// <item>a 4 KiB blob in guest memory with the 16-byte ID at offset 40 (8-byte aligned; QEMU keeps
/// the first 40 bytes for OVMF's SDT-header probe suppressor), whose address <c>ADDR</c> returns as
/// a package (low 32 bits, high 32 bits);</item>
/// <item><c>_HID "VMGENCTR"</c>, <c>_CID</c>/<c>_DDN "VM_Gen_Counter"</c>;</item>
/// <item>optional <c>CTRA</c>: a second page right after the blob whose first 4 bytes are a 32-bit
/// counter incremented with every new ID (Chalios' QEMU patch; never merged);</item>
/// <item>on restore (<see cref="PostLoad"/>) the new ID and counter are written while the guest is
/// paused, then <c>Notify(VGEN, 0x80)</c> is raised, handled by the guest after a latency.</item>
/// </list>
/// A GUID given as text is stored in QEMU's byte order: the first three fields little-endian
/// (qemu_uuid_bswap), which is the order of <see cref="Guid.ToByteArray()"/>.
/// </summary>
public sealed class VmGenIdDevice : IAcpiDevice
{
    public const string Hid = "VMGENCTR";
    public const string Cid = "VM_Gen_Counter";
    public const string Ddn = "VM_Gen_Counter";

    /// <summary>Notify code 0x80, "status change".</summary>
    public const uint NotifyStatusChange = 0x80;

    public const int IdSize = 16;
    public const ulong BlobSize = 4096;

    /// <summary>Offset of the ID in the blob (VMGENID_GUID_OFFSET).</summary>
    public const ulong GuidOffset = 40;

    /// <summary>Offset of the counter page from the blob start (CTRA = VGIA + 0x1000).</summary>
    public const ulong CounterPageOffset = 4096;

    private readonly GuestMemory _memory;
    private readonly SimulationTrace? _trace;
    private readonly byte[] _id = new byte[IdSize];

    public VmGenIdDevice(GuestMemory memory, InterruptLine notifyLine, ulong blobAddress, bool withCounter,
        ReadOnlySpan<byte> initialId, SimulationTrace? trace = null)
    {
        if (blobAddress == 0 || blobAddress % 4096 != 0)
            throw new ArgumentOutOfRangeException(nameof(blobAddress), "the blob is page aligned and not at 0");
        ulong span = withCounter ? CounterPageOffset + 4096 : BlobSize;
        if (!memory.Contains(blobAddress, span))
            throw new ArgumentOutOfRangeException(nameof(blobAddress), "the blob must lie inside guest memory");
        if (initialId.Length != IdSize)
            throw new ArgumentException("a VM generation ID is 16 bytes", nameof(initialId));
        _memory = memory;
        _trace = trace;
        NotifyLine = notifyLine;
        BlobAddress = blobAddress;
        HasCounter = withCounter;
        initialId.CopyTo(_id);
        WriteGuestCopy();
    }

    public string HardwareId => Hid;

    public string? CompatibleId => Cid;

    public InterruptLine NotifyLine { get; }

    public ulong BlobAddress { get; }

    public ulong IdAddress => BlobAddress + GuidOffset;

    public bool HasCounter { get; }

    public ulong CounterAddress => BlobAddress + CounterPageOffset;

    /// <summary>The device's current ID (what QMP query-vm-generation-id would report, in memory order).</summary>
    public ReadOnlySpan<byte> GenerationId => _id;

    /// <summary>The CTRA counter value (0 without the counter page).</summary>
    public uint Counter { get; private set; }

    public uint EvaluateStatus() => BlobAddress != 0 ? 0x0Fu : 0u;

    public bool TryEvaluatePackage(string name, out ulong[] package)
    {
        ulong address;
        if (name == "ADDR")
            address = IdAddress;
        else if (name == "CTRA" && HasCounter)
            address = CounterAddress;
        else
        {
            package = [];
            return false;
        }
        package = [address & 0xFFFF_FFFF, address >> 32];
        return true;
    }

    /// <summary>
    /// vmgenid_post_load(): the VMM loaded this guest from a snapshot. Writes
    /// <paramref name="newId"/> (and, if it differs, the incremented counter) into guest memory now,
    /// before the guest resumes, then raises Notify(0x80), handled after <paramref name="notifyLatency"/>.
    /// QEMU notifies even when the ID is unchanged; the guest driver's memcmp ignores that.
    /// </summary>
    /// <param name="notify">False models a lost notification (a negative control for the push
    /// model): memory and counter still change.</param>
    public void PostLoad(ReadOnlySpan<byte> newId, TimeSpan notifyLatency, bool notify = true)
    {
        if (newId.Length != IdSize)
            throw new ArgumentException("a VM generation ID is 16 bytes", nameof(newId));
        bool changed = !newId.SequenceEqual(_id);
        newId.CopyTo(_id);
        if (changed)
            Counter++;
        WriteGuestCopy();
        _trace?.Record("vmgenid", $"post-load: id {Convert.ToHexString(_id)}{(changed ? "" : " (unchanged)")}, counter {Counter}, "
                                  + (notify ? $"notify in {notifyLatency.Ticks}" : "no notify"));
        if (notify)
            NotifyLine.Raise(NotifyStatusChange, notifyLatency);
    }

    /// <summary>A notification without a new ID (allowed by the spec; the driver must ignore it).</summary>
    public void NotifySpurious(TimeSpan notifyLatency)
    {
        _trace?.Record("vmgenid", "spurious notify");
        NotifyLine.Raise(NotifyStatusChange, notifyLatency);
    }

    /// <summary>
    /// The bytes QEMU writes for a <c>guid=</c> property: "auto" draws 16 random bytes from
    /// <paramref name="auto"/>; otherwise the text GUID, first three fields byte-swapped to
    /// little-endian (QEMU treats the text as big-endian and calls qemu_uuid_bswap).
    /// </summary>
    public static byte[] IdFromText(string guid, IRandomGenerator auto)
    {
        var id = new byte[IdSize];
        if (guid == "auto")
            auto.Fill(id);
        else
            Guid.Parse(guid).ToByteArray().CopyTo(id, 0);
        return id;
    }

    public VmGenIdDeviceState Capture() => new((byte[])_id.Clone(), Counter);

    /// <summary>Restores the device model (its own copy of the ID and counter); guest memory comes
    /// back with the memory image.</summary>
    public void Restore(VmGenIdDeviceState s)
    {
        s.Id.AsSpan().CopyTo(_id);
        Counter = s.Counter;
    }

    private void WriteGuestCopy()
    {
        _memory.TryWrite(IdAddress, _id, "vmgenid");
        if (HasCounter)
            _memory.TryWriteUInt32(CounterAddress, Counter, "vmgenid");
    }
}

/// <summary>The device-model state a snapshot carries.</summary>
public sealed record VmGenIdDeviceState(byte[] Id, uint Counter);
