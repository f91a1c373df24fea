using ForkNotify;

namespace VmDevices;

/// <summary>
/// The guest's vmgenid driver, after Linux drivers/virt/vmgenid.c: it matches "VMGENCTR" or
/// "VM_GEN_COUNTER" (ACPICA upper-cases IDs, which is how QEMU's "VM_Gen_Counter" matches),
/// evaluates <c>ADDR</c> (exactly two integers: low | high &lt;&lt; 32), maps the 16 bytes and
/// keeps a copy. On Notify it compares all 16 bytes with the copy: a change goes to
/// <see cref="ForkKernel.AddVmForkRandomness"/> (reseed, generation, chain); no change does
/// nothing, because hypervisors may notify spuriously. When the device has a <c>CTRA</c> page the
/// counter is exposed as a pull counter (<see cref="GenerationCounter"/>).
/// </summary>
public sealed class VmGenIdDriver
{
    private static readonly string[] MatchIds = ["VMGENCTR", "VM_GEN_COUNTER"];

    private readonly ForkKernel _kernel;
    private readonly GuestMemory _memory;
    private readonly IAcpiDevice _device;
    private readonly SimulationTrace? _trace;
    private readonly byte[] _thisId = new byte[VmGenIdDevice.IdSize];
    private ulong _idAddress;

    public VmGenIdDriver(ForkKernel kernel, GuestMemory memory, IAcpiDevice device, SimulationTrace? trace = null)
    {
        _kernel = kernel;
        _memory = memory;
        _device = device;
        _trace = trace;
    }

    public bool Probed { get; private set; }

    /// <summary>The ID the driver last saw (its <c>this_id</c>).</summary>
    public ReadOnlySpan<byte> CurrentId => _thisId;

    /// <summary>The CTRA counter mapped as a pull counter, or null when the device has none.</summary>
    public GuestCounterWord? GenerationCounter { get; private set; }

    /// <summary>Notifications that carried a new ID.</summary>
    public long ForksHandled { get; private set; }

    /// <summary>Notifications ignored because the ID had not changed.</summary>
    public long SpuriousIgnored { get; private set; }

    public static bool Matches(IAcpiDevice device) =>
        MatchIds.Contains(device.HardwareId.ToUpperInvariant())
        || (device.CompatibleId is { } cid && MatchIds.Contains(cid.ToUpperInvariant()));

    /// <summary>vmgenid_add(): false (-ENODEV / -EINVAL / -ENOMEM) when the device is unusable.</summary>
    public bool Probe()
    {
        if (!Matches(_device) || (_device.EvaluateStatus() & 1) == 0)
            return Refuse("no VM generation counter device");
        if (!TryEvaluateAddress("ADDR", out ulong address))
            return Refuse("ADDR is not a package of two integers");
        if (!_memory.Contains(address, VmGenIdDevice.IdSize))
            return Refuse($"ADDR 0x{address:x} is not in guest memory");
        _idAddress = address;
        _memory.Map(address, VmGenIdDevice.IdSize).CopyTo(_thisId);
        // Not a fork: the boot ID is only mixed in, as add_device_randomness() does.
        _kernel.SetBootVmId(_thisId);
        if (TryEvaluateAddress("CTRA", out ulong counter))
            GenerationCounter = GuestCounterWord.Map32(_memory, counter);
        _device.NotifyLine.Connect(OnNotify);
        Probed = true;
        _trace?.Record("vmgenid-driver", $"probed, id at 0x{address:x}, counter {(GenerationCounter is null ? "absent" : "present")}");
        return true;
    }

    private void OnNotify(uint code)
    {
        // Like Linux the event code is not inspected: any Notify means "look again".
        ReadOnlySpan<byte> next = _memory.Map(_idAddress, VmGenIdDevice.IdSize);
        if (next.SequenceEqual(_thisId))
        {
            SpuriousIgnored++;
            _trace?.Record("vmgenid-driver", "notify ignored: id unchanged");
            return;
        }
        next.CopyTo(_thisId);
        ForksHandled++;
        _trace?.Record("vmgenid-driver", $"new id {Convert.ToHexString(_thisId)}: fork path");
        _kernel.AddVmForkRandomness(_thisId);
    }

    private bool TryEvaluateAddress(string name, out ulong address)
    {
        address = 0;
        if (!_device.TryEvaluatePackage(name, out ulong[] p) || p.Length != 2)
            return false;
        address = (p[0] & 0xFFFF_FFFF) | (p[1] << 32);
        return true;
    }

    private bool Refuse(string why)
    {
        _trace?.Record("vmgenid-driver", $"probe failed: {why}");
        return false;
    }

    public VmGenIdDriverState Capture() =>
        new(Probed, _idAddress, GenerationCounter?.Address, (byte[])_thisId.Clone(), ForksHandled, SpuriousIgnored);

    public void Restore(VmGenIdDriverState s)
    {
        Probed = s.Probed;
        _idAddress = s.IdAddress;
        s.ThisId.AsSpan().CopyTo(_thisId);
        ForksHandled = s.ForksHandled;
        SpuriousIgnored = s.SpuriousIgnored;
        GenerationCounter = s.CounterAddress is { } c ? GuestCounterWord.Map32(_memory, c) : null;
        if (Probed)
            _device.NotifyLine.Connect(OnNotify);
    }
}

/// <summary>The driver's kernel-memory state, as a snapshot copies it.</summary>
public sealed record VmGenIdDriverState(
    bool Probed, ulong IdAddress, ulong? CounterAddress, byte[] ThisId, long ForksHandled, long SpuriousIgnored);
