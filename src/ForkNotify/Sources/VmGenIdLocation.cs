using System.Buffers.Binary;

namespace ForkNotify;

/// <summary>
/// The guest-physical address of the 16-byte VM generation ID, and which firmware table gave it.
/// <see cref="Find"/> tries, in order: QEMU's SSDT <c>VGIA</c> (+40), QEMU's fw_cfg file
/// <c>etc/vmgenid_addr</c> (already the ID's address; only with the <c>qemu_fw_cfg</c> module),
/// Firecracker's DSDT <c>VGEN.ADDR</c> (x86), and the device tree's <c>vmgenid</c> node (aarch64).
/// </summary>
public readonly record struct VmGenIdLocation(ulong Address, string Origin)
{
    /// <summary>The ID's size; it sits in an 8-byte aligned buffer (Microsoft's spec, R1a), which may
    /// still start in the last 8 bytes of a page and end in the next.</summary>
    public const int IdLength = 16;

    /// <summary>The address, or a reason naming everything looked at; never throws.</summary>
    public static bool Find(VmGenIdPaths paths, out VmGenIdLocation location, out string reason)
    {
        ArgumentNullException.ThrowIfNull(paths);
        location = default;
        var misses = new List<string>();
        foreach (Func<VmGenIdPaths, List<string>, VmGenIdLocation?> probe in Probes)
        {
            if (probe(paths, misses) is not { } found)
                continue;
            if (found.Address % 8 != 0)
            {
                misses.Add($"{found.Origin} gives 0x{found.Address:x}, not 8-byte aligned");
                continue;
            }
            location = found;
            reason = "";
            return true;
        }
        reason = "no VM generation ID address: " + string.Join("; ", misses);
        return false;
    }

    private static readonly Func<VmGenIdPaths, List<string>, VmGenIdLocation?>[] Probes =
        [FromQemuSsdt, FromQemuFwCfg, FromFirecrackerDsdt, FromDeviceTree];

    private static VmGenIdLocation? FromQemuSsdt(VmGenIdPaths paths, List<string> misses)
    {
        string[] tables;
        try
        {
            tables = Directory.Exists(paths.AcpiTables) ? Directory.GetFiles(paths.AcpiTables, "SSDT*") : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            misses.Add($"{paths.AcpiTables}: {e.Message}");
            return null;
        }
        if (tables.Length == 0)
        {
            misses.Add($"no {Path.Combine(paths.AcpiTables, "SSDT*")}");
            return null;
        }
        Array.Sort(tables, StringComparer.Ordinal);
        foreach (string table in tables)
        {
            if (!TryRead(table, misses, out byte[] bytes))
                continue;
            if (VmGenIdAml.FindVgia(bytes) is not ulong vgia)
                continue;
            if (vgia == 0)
            {
                misses.Add($"{table}: VGIA is 0 (the firmware placed no ID blob)");
                return null;
            }
            return new VmGenIdLocation(vgia + VmGenIdAml.QemuIdOffset, $"{table} VGIA+{VmGenIdAml.QemuIdOffset}");
        }
        misses.Add($"no VGIA in {Path.Combine(paths.AcpiTables, "SSDT*")}");
        return null;
    }

    private static VmGenIdLocation? FromQemuFwCfg(VmGenIdPaths paths, List<string> misses)
    {
        if (!File.Exists(paths.FwCfgAddress))
        {
            misses.Add($"no {paths.FwCfgAddress} (qemu_fw_cfg module not loaded?)");
            return null;
        }
        if (!TryRead(paths.FwCfgAddress, misses, out byte[] bytes))
            return null;
        if (bytes.Length != 8)
        {
            misses.Add($"{paths.FwCfgAddress}: {bytes.Length} bytes, not 8");
            return null;
        }
        ulong address = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (address == 0)
        {
            misses.Add($"{paths.FwCfgAddress}: 0 (the firmware wrote no address)");
            return null;
        }
        return new VmGenIdLocation(address, paths.FwCfgAddress); // already the ID: no +40
    }

    private static VmGenIdLocation? FromFirecrackerDsdt(VmGenIdPaths paths, List<string> misses)
    {
        string dsdt = Path.Combine(paths.AcpiTables, "DSDT");
        if (!File.Exists(dsdt))
        {
            misses.Add($"no {dsdt}");
            return null;
        }
        if (!TryRead(dsdt, misses, out byte[] bytes))
            return null;
        if (VmGenIdAml.FindVgenAddr(bytes) is not ulong address)
        {
            misses.Add($"no VGEN ADDR package in {dsdt}");
            return null;
        }
        return new VmGenIdLocation(address, $"{dsdt} VGEN.ADDR");
    }

    private static VmGenIdLocation? FromDeviceTree(VmGenIdPaths paths, List<string> misses)
    {
        string node = Path.Combine(paths.DeviceTree, "vmgenid");
        string reg = Path.Combine(node, "reg");
        if (!File.Exists(reg))
        {
            misses.Add($"no {reg}");
            return null;
        }
        string compatible = Path.Combine(node, "compatible");
        if (!TryRead(compatible, misses, out byte[] compat))
            return null;
        if (!compat.AsSpan().TrimEnd((byte)0).SequenceEqual("microsoft,vmgenid"u8))
        {
            misses.Add($"{compatible} is not microsoft,vmgenid");
            return null;
        }
        if (!TryRead(reg, misses, out byte[] cells))
            return null;
        // Big-endian cells; Firecracker writes <u64 address, u64 size> (#address-cells = #size-cells = 2).
        ulong? address = cells.Length switch
        {
            16 => BinaryPrimitives.ReadUInt64BigEndian(cells),
            8 => BinaryPrimitives.ReadUInt32BigEndian(cells),
            _ => null,
        };
        ulong size = cells.Length switch
        {
            16 => BinaryPrimitives.ReadUInt64BigEndian(cells.AsSpan(8)),
            8 => BinaryPrimitives.ReadUInt32BigEndian(cells.AsSpan(4)),
            _ => 0,
        };
        if (address is null || size < IdLength)
        {
            misses.Add($"{reg}: {cells.Length} bytes, not one (address, size >= 16) pair");
            return null;
        }
        return new VmGenIdLocation(address.Value, reg);
    }

    private static bool TryRead(string path, List<string> misses, out byte[] bytes)
    {
        try
        {
            bytes = File.ReadAllBytes(path);
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            misses.Add($"{path}: permission denied (the firmware tables are readable by root only)");
        }
        catch (IOException e)
        {
            misses.Add($"{path}: {e.Message}");
        }
        bytes = [];
        return false;
    }
}
