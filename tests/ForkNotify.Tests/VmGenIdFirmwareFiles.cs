using System.Buffers.Binary;
using System.Text;
using ForkNotify;

namespace ForkNotify.Tests;

/// <summary>
/// A guest's view of a vmgenid device, as files: a sparse "physical memory" file holding the ID at
/// its guest-physical address (what /dev/mem maps), and the firmware tables that point at it, laid
/// out byte for byte as QEMU's SSDT, QEMU's fw_cfg file, Firecracker's DSDT and Firecracker's
/// aarch64 device-tree node are. <see cref="WriteId"/> is the hypervisor's restore: a new ID
/// written into the page, which the source's shared mapping sees at once.
/// </summary>
internal sealed class VmGenIdFirmwareFiles
{
    public VmGenIdFirmwareFiles(TempDir tmp)
    {
        Paths = new VmGenIdPaths
        {
            Memory = tmp.File("mem"),
            AcpiTables = tmp.File("tables"),
            FwCfgAddress = tmp.File("vmgenid_addr"),
            DeviceTree = tmp.File("devicetree"),
        };
        Directory.CreateDirectory(Paths.AcpiTables);
    }

    public VmGenIdPaths Paths { get; }

    /// <summary>Makes the memory file end with the page(s) holding the ID at <paramref name="idAddress"/> (sparse below).</summary>
    public void CreateMemory(ulong idAddress, byte[] id, int pageSize = 4096)
    {
        ulong end = (idAddress + 16 + (ulong)pageSize - 1) & ~(ulong)(pageSize - 1);
        using (var f = new FileStream(Paths.Memory, FileMode.Create, FileAccess.Write))
            f.SetLength((long)end);
        WriteId(idAddress, id);
    }

    /// <summary>The hypervisor's restore: the new ID, written where the guest's page is.</summary>
    public void WriteId(ulong idAddress, byte[] id)
    {
        using var f = new FileStream(Paths.Memory, FileMode.Open, FileAccess.Write);
        f.Position = (long)idAddress;
        f.Write(id);
    }

    /// <summary>QEMU's <c>hw/acpi/vmgenid.c</c> SSDT (OEM table ID <c>VMGENID</c>), VGIA patched to <paramref name="vgia"/>.</summary>
    public void WriteQemuSsdt(string file, uint vgia) =>
        File.WriteAllBytes(Path.Combine(Paths.AcpiTables, file), Table("SSDT", "VMGENID", QemuAml(vgia)));

    /// <summary>Another SSDT without VGIA (QEMU builds several), to be passed over.</summary>
    public void WriteOtherSsdt(string file) =>
        File.WriteAllBytes(Path.Combine(Paths.AcpiTables, file), Table("SSDT", "CPUHOTPL",
            [.. Name("CPUS", [0x0A, 0x02]), .. Method("_STA", [0xA4, 0x0A, 0x0F])]));

    /// <summary>Firecracker's DSDT: a VGEN device among others, its ADDR a package of (low, high) as
    /// its AML writer encodes u32s (0 as ZeroOp, small values as Byte/WordConst, else DWordConst).</summary>
    public void WriteFirecrackerDsdt(ulong address)
    {
        byte[] other = Device("_SB_.COM1"u8, [.. Name("_HID", EisaId()), .. Name("ADDR", [0x0C, 0xF8, 0x03, 0, 0])]);
        byte[] vgen = Device("_SB_.VGEN"u8,
        [
            .. Name("_HID", AmlString("VMGENCTR")),
            .. Name("_CID", AmlString("VM_Gen_Counter")),
            .. Name("_DDN", AmlString("VM_Gen_Counter")),
            .. Name("ADDR", Package(Integer((uint)address), Integer((uint)(address >> 32)))),
        ]);
        File.WriteAllBytes(Path.Combine(Paths.AcpiTables, "DSDT"), Table("DSDT", "FCVMDSDT", [.. other, .. vgen]));
    }

    public void WriteFwCfgAddress(ulong address)
    {
        var raw = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(raw, address);
        File.WriteAllBytes(Paths.FwCfgAddress, raw);
    }

    /// <summary>Firecracker's aarch64 node: <c>compatible = "microsoft,vmgenid"</c>, <c>reg = &lt;u64 addr, u64 16&gt;</c> (big-endian).</summary>
    public void WriteDeviceTree(ulong address, string compatible = "microsoft,vmgenid")
    {
        string node = Path.Combine(Paths.DeviceTree, "vmgenid");
        Directory.CreateDirectory(node);
        File.WriteAllBytes(Path.Combine(node, "compatible"), [.. Encoding.ASCII.GetBytes(compatible), 0]);
        var reg = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(reg, address);
        BinaryPrimitives.WriteUInt64BigEndian(reg.AsSpan(8), 16);
        File.WriteAllBytes(Path.Combine(node, "reg"), reg);
    }

    /// <summary>A 16-byte ID from a GUID, as QEMU stores it (Microsoft's little-endian layout = <see cref="Guid.ToByteArray()"/>).</summary>
    public static byte[] Id(string guid) => Guid.Parse(guid).ToByteArray();

    // ---- AML, as QEMU's aml-build.c and Firecracker's acpi_tables emit it ----

    private static byte[] QemuAml(uint vgia)
    {
        byte[] vgiaName = [.. Name("VGIA", [0x0C, .. Le32(vgia)])];
        byte[] sta = Method("_STA", [0x70, 0x0A, 0x0F, 0x60, 0xA0, 0x09, 0x93, .. "VGIA"u8, 0x00, 0x70, 0x00, 0x60, 0xA4, 0x60]);
        // ADDR: Local0 = Package (2) {}; Local0[0] = VGIA + 0x28; Local0[1] = 0; Return (Local0)
        byte[] addr = Method("ADDR",
        [
            0x70, 0x12, 0x02, 0x02, 0x60,
            0x70, 0x72, .. "VGIA"u8, 0x0A, 0x28, 0x00, 0x88, 0x60, 0x00, 0x00,
            0x70, 0x00, 0x88, 0x60, 0x01, 0x00,
            0xA4, 0x60,
        ]);
        byte[] device = Device("VGEN"u8,
        [
            .. Name("_HID", AmlString("QEMUVGID")),
            .. Name("_CID", AmlString("VM_Gen_Counter")),
            .. Name("_DDN", AmlString("VM_Gen_Counter")),
            .. sta, .. addr,
        ]);
        byte[] scope = [0x10, .. PkgLength(5 + device.Length), .. "\\_SB_"u8, .. device];
        byte[] gpe = [0x10, .. PkgLength(6 + 0), .. "\\_GPE"u8]; // the _E05 method's scope, body left out
        return [.. vgiaName, .. scope, .. gpe];
    }

    private static byte[] Table(string signature, string oemTableId, byte[] aml)
    {
        var t = new byte[36 + aml.Length];
        Encoding.ASCII.GetBytes(signature).CopyTo(t, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(t.AsSpan(4), (uint)t.Length);
        t[8] = 1; // revision
        Encoding.ASCII.GetBytes("BOCHS ").CopyTo(t, 10);
        Encoding.ASCII.GetBytes(oemTableId.PadRight(8)).CopyTo(t, 16);
        Encoding.ASCII.GetBytes("BXPC").CopyTo(t, 28);
        aml.CopyTo(t, 36);
        byte sum = 0;
        foreach (byte b in t) sum += b;
        t[9] = (byte)(0 - sum); // checksum: the whole table sums to 0
        return t;
    }

    private static byte[] Name(string name, byte[] value) => [0x08, .. Encoding.ASCII.GetBytes(name), .. value];

    private static byte[] Method(string name, byte[] body) =>
        [0x14, .. PkgLength(4 + 1 + body.Length), .. Encoding.ASCII.GetBytes(name), 0x00, .. body];

    private static byte[] Device(ReadOnlySpan<byte> path, byte[] body)
    {
        int dot = path.IndexOf((byte)'.');
        byte[] name = dot < 0 ? path.ToArray() : [0x2E, .. path[..dot], .. path[(dot + 1)..]];
        return [0x5B, 0x82, .. PkgLength(name.Length + body.Length), .. name, .. body];
    }

    private static byte[] Package(params byte[][] elements)
    {
        byte[] items = [(byte)elements.Length, .. elements.SelectMany(e => e)];
        return [0x12, .. PkgLength(items.Length), .. items];
    }

    private static byte[] Integer(uint value) => value switch
    {
        0 => [0x00],
        1 => [0x01],
        <= 0xff => [0x0A, (byte)value],
        <= 0xffff => [0x0B, .. Le32(value).AsSpan(0, 2)],
        _ => [0x0C, .. Le32(value)],
    };

    private static byte[] AmlString(string s) => [0x0D, .. Encoding.ASCII.GetBytes(s), 0x00];

    private static byte[] EisaId() => [0x0C, 0x41, 0xD0, 0x05, 0x01];

    private static byte[] Le32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    /// <summary>PkgLength of a body of <paramref name="content"/> bytes (the length counts its own bytes).</summary>
    private static byte[] PkgLength(int content)
    {
        if (content + 1 <= 0x3f)
            return [(byte)(content + 1)];
        int total = content + 2;
        if (total <= 0xfff)
            return [(byte)(0x40 | (total & 0x0f)), (byte)(total >> 4)];
        total = content + 3;
        return [(byte)(0x80 | (total & 0x0f)), (byte)(total >> 4), (byte)(total >> 12)];
    }
}
