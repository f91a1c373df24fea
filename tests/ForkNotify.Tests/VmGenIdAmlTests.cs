using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

/// <summary>The AML patterns on tables taken from real hypervisors (Vectors/*.aml).</summary>
public sealed class VmGenIdAmlTests
{
    private static byte[] Table(string name) => File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Vectors", name));

    /// <summary>
    /// The DSDT of a Firecracker 1.15 x86 microVM (copied from /sys/firmware/acpi/tables/DSDT of
    /// the CI machine, which is one): VGEN's ADDR is <c>Package (2) { 0x000DFFF0, 0 }</c> with the high
    /// word a DWordConst 0, below 1 MiB as Firecracker's source says; no VGIA.
    /// </summary>
    [Fact]
    public void Real_firecracker_dsdt_gives_the_vgen_addr_below_1_MiB()
    {
        byte[] dsdt = Table("firecracker-x86-dsdt.aml");
        Assert.Equal("DSDT"u8.ToArray(), dsdt[..4]);
        Assert.Equal(0xdfff0UL, VmGenIdAml.FindVgenAddr(dsdt));
        Assert.Null(VmGenIdAml.FindVgia(dsdt));
    }

    /// <summary>
    /// The vmgenid SSDT of a QEMU 7.2 guest (SeaBIOS, 256 MiB; dumped from
    /// /sys/firmware/acpi/tables/SSDT inside the VM fork test's guest): OEM table ID VMGENID, VGIA
    /// patched by the firmware to 0x0ffff000, so the ID is at 0x0ffff028. Its VGEN device has an
    /// ADDR method, not a name, so the Firecracker pattern must not match.
    /// </summary>
    [Fact]
    public void Real_qemu_ssdt_gives_vgia()
    {
        byte[] ssdt = Table("qemu-7.2-vmgenid-ssdt.aml");
        Assert.Equal("SSDT"u8.ToArray(), ssdt[..4]);
        Assert.Equal("VMGENID\0"u8.ToArray(), ssdt[16..24]);
        Assert.Equal(0x0ffff000UL, VmGenIdAml.FindVgia(ssdt));
        Assert.Null(VmGenIdAml.FindVgenAddr(ssdt));
    }

    [Fact]
    public void The_source_reads_the_id_through_the_real_qemu_ssdt()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        File.WriteAllBytes(Path.Combine(fw.Paths.AcpiTables, "SSDT"), Table("qemu-7.2-vmgenid-ssdt.aml"));
        byte[] id = VmGenIdFirmwareFiles.Id("6b0e29a4-1f77-4c1e-9d35-0a8e2c51f4b7");
        fw.CreateMemory(0x0ffff028, id);
        using var source = new VmGenIdSource(fw.Paths);
        Assert.True(source.Probe().IsAvailable, source.Probe().Reason);
        Assert.Equal(1UL, source.Read());
    }

    [Fact]
    public void Truncated_and_garbage_tables_give_nothing_and_never_throw()
    {
        byte[] dsdt = Table("firecracker-x86-dsdt.aml");
        for (int cut = 0; cut < dsdt.Length; cut += 7)
        {
            ulong? found = VmGenIdAml.FindVgenAddr(dsdt.AsSpan(0, cut));
            Assert.True(found is null or 0xdfff0UL);
            VmGenIdAml.FindVgia(dsdt.AsSpan(0, cut));
        }
        byte[] ssdt = Table("qemu-7.2-vmgenid-ssdt.aml");
        for (int cut = 0; cut < ssdt.Length; cut++)
            Assert.True(VmGenIdAml.FindVgia(ssdt.AsSpan(0, cut)) is null or 0x0ffff000UL);
        var random = new Random(11);
        var junk = new byte[4096];
        for (int i = 0; i < 200; i++)
        {
            random.NextBytes(junk);
            VmGenIdAml.FindVgenAddr(junk);
            VmGenIdAml.FindVgia(junk);
        }
    }
}
