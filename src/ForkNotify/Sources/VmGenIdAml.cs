using System.Buffers.Binary;

namespace ForkNotify;

/// <summary>
/// The two ACPI table layouts that say where a hypervisor put the 16-byte VM generation ID, read
/// straight from the AML bytes (no interpreter: each is one fixed pattern).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>QEMU (<c>hw/acpi/vmgenid.c</c>), its own SSDT: <c>Name (VGIA, 0x...)</c> at table scope,
/// a DWordConst the firmware patches to the guest-physical address of the <c>etc/vmgenid_guid</c>
/// blob. The ID is at <c>VGIA + 40</c> (the driver's <c>ADDR</c> method adds 0x28). Bytes:
/// <c>08 'VGIA' 0C dword</c> (or <c>0E qword</c>).</item>
/// <item>Firecracker x86 (<c>src/vmm/src/devices/acpi/vmgenid.rs</c>), the DSDT:
/// <c>Device (\_SB.VGEN) { ... Name (ADDR, Package () { low, high }) }</c>, the ID's own address
/// (no +40). Bytes: <c>5B 82 PkgLength NameString</c> ending in <c>VGEN</c>, and within that device
/// <c>08 'ADDR' 12 PkgLength 02 int int</c>, each int as ZeroOp/OneOp/Byte/Word/DWord/QWordConst.</item>
/// </list>
/// Only Firecracker's layout has never run here: its tests use tables built byte for byte as its
/// AML writer emits them.
/// </remarks>
public static class VmGenIdAml
{
    /// <summary>Where the ID sits in QEMU's blob (the SSDT's ADDR method: <c>VGIA + 0x28</c>).</summary>
    public const int QemuIdOffset = 40;

    /// <summary>Size of the common ACPI table header; AML starts after it.</summary>
    public const int TableHeaderSize = 36;

    private const byte NameOp = 0x08;
    private const byte ZeroOp = 0x00;
    private const byte OneOp = 0x01;
    private const byte BytePrefix = 0x0A;
    private const byte WordPrefix = 0x0B;
    private const byte DWordPrefix = 0x0C;
    private const byte QWordPrefix = 0x0E;
    private const byte PackageOp = 0x12;
    private const byte OnesOp = 0xFF;
    private const byte ExtOpPrefix = 0x5B;
    private const byte DeviceOp = 0x82;

    private static ReadOnlySpan<byte> Vgia => "VGIA"u8;
    private static ReadOnlySpan<byte> Vgen => "VGEN"u8;
    private static ReadOnlySpan<byte> Addr => "ADDR"u8;

    /// <summary>
    /// The value of QEMU's <c>VGIA</c> in one table (the blob address, not yet +40); null when the
    /// table has no such name. 0 means the firmware did not place the blob.
    /// </summary>
    public static ulong? FindVgia(ReadOnlySpan<byte> table)
    {
        ReadOnlySpan<byte> aml = Body(table);
        for (int at = aml.IndexOf(Vgia); at >= 0; at = Next(aml, at, Vgia))
        {
            if (at == 0 || aml[at - 1] != NameOp)
                continue;
            if (TryInteger(aml[(at + Vgia.Length)..], out ulong value, out _))
                return value;
        }
        return null;
    }

    /// <summary>
    /// Firecracker's <c>VGEN.ADDR</c> package as one address (<c>low | high &lt;&lt; 32</c>, the
    /// driver's own sum); null when no <c>VGEN</c> device holds a two-integer <c>ADDR</c> name.
    /// </summary>
    public static ulong? FindVgenAddr(ReadOnlySpan<byte> table)
    {
        ReadOnlySpan<byte> aml = Body(table);
        for (int at = 0; at + 1 < aml.Length; at++)
        {
            if (aml[at] != ExtOpPrefix || aml[at + 1] != DeviceOp)
                continue;
            if (!TryPkgLength(aml[(at + 2)..], out int length, out int lengthBytes))
                continue;
            int start = at + 2;
            if (length < lengthBytes || start + length > aml.Length)
                continue;
            ReadOnlySpan<byte> device = aml.Slice(start + lengthBytes, length - lengthBytes);
            int name = NameStringEnd(device);
            if (name < Vgen.Length || !device[(name - Vgen.Length)..name].SequenceEqual(Vgen))
                continue;
            if (FindAddrPackage(device[name..]) is ulong address)
                return address;
        }
        return null;
    }

    private static ulong? FindAddrPackage(ReadOnlySpan<byte> body)
    {
        for (int at = body.IndexOf(Addr); at >= 0; at = Next(body, at, Addr))
        {
            if (at == 0 || body[at - 1] != NameOp)
                continue;
            ReadOnlySpan<byte> rest = body[(at + Addr.Length)..];
            if (rest.Length < 2 || rest[0] != PackageOp || !TryPkgLength(rest[1..], out int length, out int lengthBytes))
                continue;
            if (1 + length > rest.Length || length < lengthBytes + 1)
                continue;
            ReadOnlySpan<byte> package = rest.Slice(1 + lengthBytes, length - lengthBytes);
            if (package[0] != 2)
                continue;
            if (!TryInteger(package[1..], out ulong low, out int used) || !TryInteger(package[(1 + used)..], out ulong high, out _))
                continue;
            return (low & 0xffff_ffff) | (high << 32);
        }
        return null;
    }

    private static int Next(ReadOnlySpan<byte> aml, int at, ReadOnlySpan<byte> what)
    {
        int next = aml[(at + 1)..].IndexOf(what);
        return next < 0 ? -1 : at + 1 + next;
    }

    /// <summary>The AML after the header, bounded by the header's length field (a shorter file is read as far as it goes).</summary>
    private static ReadOnlySpan<byte> Body(ReadOnlySpan<byte> table)
    {
        if (table.Length <= TableHeaderSize)
            return [];
        uint declared = BinaryPrimitives.ReadUInt32LittleEndian(table[4..]);
        int end = declared >= TableHeaderSize && declared < table.Length ? (int)declared : table.Length;
        return table[TableHeaderSize..end];
    }

    /// <summary>An AML integer: ZeroOp, OneOp, OnesOp or a Byte/Word/DWord/QWord constant.</summary>
    private static bool TryInteger(ReadOnlySpan<byte> aml, out ulong value, out int used)
    {
        value = 0;
        used = 0;
        if (aml.IsEmpty)
            return false;
        int size;
        switch (aml[0])
        {
            case ZeroOp: used = 1; return true;
            case OneOp: value = 1; used = 1; return true;
            case OnesOp: value = ulong.MaxValue; used = 1; return true;
            case BytePrefix: size = 1; break;
            case WordPrefix: size = 2; break;
            case DWordPrefix: size = 4; break;
            case QWordPrefix: size = 8; break;
            default: return false;
        }
        if (aml.Length < 1 + size)
            return false;
        Span<byte> word = stackalloc byte[8];
        word.Clear();
        aml.Slice(1, size).CopyTo(word);
        value = BinaryPrimitives.ReadUInt64LittleEndian(word);
        used = 1 + size;
        return true;
    }

    /// <summary>PkgLength (ACPI 6.5 §20.2.4): bits 7-6 of the lead byte count the bytes that follow.</summary>
    private static bool TryPkgLength(ReadOnlySpan<byte> aml, out int length, out int bytes)
    {
        length = 0;
        bytes = 0;
        if (aml.IsEmpty)
            return false;
        int follow = aml[0] >> 6;
        if (aml.Length < 1 + follow)
            return false;
        if (follow == 0)
        {
            length = aml[0] & 0x3f;
        }
        else
        {
            length = aml[0] & 0x0f;
            for (int i = 0; i < follow; i++)
                length |= aml[1 + i] << (4 + 8 * i);
        }
        bytes = 1 + follow;
        return true;
    }

    /// <summary>The end of a NameString at the start of <paramref name="aml"/> (root/parent
    /// prefixes, then one NameSeg, a DualNamePrefix pair or a MultiNamePrefix list); 0 if none.</summary>
    private static int NameStringEnd(ReadOnlySpan<byte> aml)
    {
        int at = 0;
        while (at < aml.Length && aml[at] is (byte)'\\' or (byte)'^')
            at++;
        if (at >= aml.Length)
            return 0;
        int segments = aml[at] switch
        {
            0x2E => 2, // DualNamePrefix
            0x2F => at + 1 < aml.Length ? aml[at + 1] : 0, // MultiNamePrefix, count
            0x00 => 0, // NullName
            _ => 1,
        };
        at += aml[at] switch { 0x2E => 1, 0x2F => 2, 0x00 => 1, _ => 0 };
        int end = at + 4 * segments;
        return end <= aml.Length ? end : 0;
    }
}
