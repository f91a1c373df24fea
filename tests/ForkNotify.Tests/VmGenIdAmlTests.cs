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
