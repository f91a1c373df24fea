using System.Collections.Concurrent;
using ForkNotify;
using TestSupport;
using Xunit;

namespace ForkNotify.Tests;

public sealed class VmGenIdSourceTests
{
    // Where QEMU 7.2 + SeaBIOS put the blob in a 512 MiB guest (measured: VGIA 0x1ffff000).
    private const uint Vgia = 0x1ffff000;
    private const ulong QemuId = Vgia + 40;
    private static readonly byte[] IdA = VmGenIdFirmwareFiles.Id("01020304-0506-0708-090a-0b0c0d0e0f00");
    private static readonly byte[] IdB = VmGenIdFirmwareFiles.Id("8f3c2a71-5b0e-4d6a-9e11-2c7f40b8d9e5");
    private static readonly byte[] IdC = VmGenIdFirmwareFiles.Id("d2b9e6f0-13a4-47c8-b5d1-9a0e7c3f6b24");

    private static VmGenIdSource Source(VmGenIdFirmwareFiles fw, ListLogger? logger = null) =>
        new(fw.Paths, TimeSpan.FromMilliseconds(5), logger);

    [Fact]
    public void Qemu_ssdt_vgia_plus_40_is_the_id_and_a_new_id_is_a_new_generation()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteOtherSsdt("SSDT");
        fw.WriteQemuSsdt("SSDT1", Vgia);
        fw.CreateMemory(QemuId, IdA);
        using var source = Source(fw);

        Assert.Equal(VmGenIdSource.Unreadable, source.Read()); // not probed yet
        ForkSourceAvailability a = source.Probe();
        Assert.True(a.IsAvailable, a.Reason);
        Assert.Equal($"{Path.Combine(fw.Paths.AcpiTables, "SSDT1")} VGIA+40", source.Origin);
        Assert.Equal(1UL, source.Read());

        fw.WriteId(QemuId, IdB); // the restore
        Assert.Equal(2UL, source.Read());
        Assert.Equal(2UL, source.Read()); // same ID, same generation
        fw.WriteId(QemuId, IdB);           // rewritten unchanged (a spurious restore): no new generation
        Assert.Equal(2UL, source.Read());
        fw.WriteId(QemuId, IdA);           // even an ID seen before is a new generation
        Assert.Equal(3UL, source.Read());
    }

    [Fact]
    public void Without_the_plus_40_the_source_would_read_the_blob_header_negative_control()
    {
        // The blob's first 40 bytes are padding (zero): taking VGIA itself as the ID address finds nothing.
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteFwCfgAddress(Vgia); // fw_cfg's address is used as-is, so this points at the blob's start
        fw.CreateMemory(QemuId, IdA);
        using var source = Source(fw);
        Assert.Contains("all zeros", source.Probe().Reason);
    }

    [Fact]
    public void Qemu_fw_cfg_address_points_at_the_id_itself()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteFwCfgAddress(QemuId);
        fw.CreateMemory(QemuId, IdA);
        using var source = Source(fw);
        Assert.True(source.Probe().IsAvailable, source.Probe().Reason);
        Assert.Equal(fw.Paths.FwCfgAddress, source.Origin);
        fw.WriteId(QemuId, IdB);
        Assert.Equal(2UL, source.Read());
    }

    [Theory]
    [InlineData(0x9fff0UL)]          // below 1 MiB, as Firecracker x86 allocates it (low as DWordConst, high as ZeroOp)
    [InlineData(0x1_0000_0ff8UL)]    // above 4 GiB (both package elements used), and across a page boundary
    [InlineData(0x800UL)]            // small enough for a WordConst
    public void Firecracker_dsdt_vgen_addr_package_is_the_ids_own_address(ulong address)
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteOtherSsdt("SSDT"); // no VGIA: QEMU's way is tried first and passed over
        fw.WriteFirecrackerDsdt(address);
        fw.CreateMemory(address, IdA);
        using var source = Source(fw);
        Assert.True(source.Probe().IsAvailable, source.Probe().Reason);
        Assert.EndsWith("DSDT VGEN.ADDR", source.Origin);
        fw.WriteId(address, IdB);
        Assert.Equal(2UL, source.Read());
    }

    [Fact]
    public void Firecracker_aarch64_device_tree_node_gives_the_address()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        const ulong address = 0x8000_1000;
        fw.WriteDeviceTree(address);
        fw.CreateMemory(address, IdA);
        using var source = Source(fw);
        Assert.True(source.Probe().IsAvailable, source.Probe().Reason);
        Assert.EndsWith(Path.Combine("vmgenid", "reg"), source.Origin);
    }

    [Fact]
    public void A_device_tree_node_with_another_compatible_is_not_taken()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteDeviceTree(0x8000_1000, compatible: "acme,not-vmgenid");
        fw.CreateMemory(0x8000_1000, IdA);
        using var source = Source(fw);
        Assert.Contains("is not microsoft,vmgenid", source.Probe().Reason);
    }

    [Fact]
    public void Nothing_found_names_every_place_looked_at_and_never_throws()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteOtherSsdt("SSDT");
        using var source = Source(fw);
        ForkSourceAvailability a = source.Probe();
        Assert.False(a.IsAvailable);
        Assert.StartsWith("no VM generation ID address: ", a.Reason);
        Assert.Contains("no VGIA in", a.Reason);
        Assert.Contains("qemu_fw_cfg module not loaded", a.Reason);
        Assert.Contains("DSDT", a.Reason);
        Assert.Contains(Path.Combine("vmgenid", "reg"), a.Reason);
        Assert.Equal(VmGenIdSource.Unreadable, source.Read());
        Assert.Throws<InvalidOperationException>(() => source.Start(_ => { }));
    }

    [Fact]
    public void Unpatched_vgia_missing_memory_short_memory_and_a_zero_id_are_not_available()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteQemuSsdt("SSDT", 0);
        using (var s = Source(fw))
            Assert.Contains("VGIA is 0", s.Probe().Reason);

        fw.WriteQemuSsdt("SSDT", Vgia);
        using (var s = Source(fw))
            Assert.Contains("No such file", s.Probe().Reason); // no "physical memory" yet

        File.WriteAllBytes(fw.Paths.Memory, new byte[4096]);
        using (var s = Source(fw))
            Assert.Contains("ends before the ID's page 0x1ffff000", s.Probe().Reason);

        fw.CreateMemory(QemuId, new byte[16]);
        using (var s = Source(fw))
            Assert.Contains("all zeros", s.Probe().Reason);

        fw.WriteId(QemuId, IdA); // a failed probe leaves nothing open and may be retried
        using (var s = Source(fw))
            Assert.True(s.Probe().IsAvailable);
    }

    [Fact]
    public void Real_host_probe_does_not_crash()
    {
        using var source = new VmGenIdSource();
        ForkSourceAvailability a = source.Probe(); // this host has no vmgenid device; inside the VM test it has
        Assert.True(a.IsAvailable || !string.IsNullOrEmpty(a.Reason));
    }

    [Fact]
    public void Start_reports_each_new_id_once_with_its_bytes_and_never_puts_the_id_in_the_text()
    {
        using var tmp = new TempDir();
        var fw = new VmGenIdFirmwareFiles(tmp);
        fw.WriteQemuSsdt("SSDT", Vgia);
        fw.CreateMemory(QemuId, IdA);
        var logger = new ListLogger();
        using var source = Source(fw, logger);
        var events = new ConcurrentQueue<ForkEvent>();
        source.Start(events.Enqueue);

        fw.WriteId(QemuId, IdB);
        Assert.True(Eventually.True(() => events.Count >= 1));
        fw.WriteId(QemuId, IdC);
        Assert.True(Eventually.True(() => events.Count >= 2));
        Thread.Sleep(50); // a few more polls of an unchanged page add nothing
        source.Dispose();

        Assert.Equal([2UL, 3UL], events.Select(e => e.Generation!.Value));
        Assert.Equal(IdB, events.First().VmId);
        Assert.Equal(IdC, events.Last().VmId);
        foreach (ForkEvent e in events)
        {
            Assert.StartsWith("vmgenid (", e.Source);
            foreach (byte[] id in new[] { IdA, IdB, IdC })
            {
                Assert.DoesNotContain(Convert.ToHexString(id), e.Detail!, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain(new Guid(id).ToString(), e.Detail!, StringComparison.OrdinalIgnoreCase);
            }
        }
    }

    [Fact]
    public void The_new_id_is_what_makes_two_clones_randomness_diverge()
    {
        // Two clones of one snapshot: the same generator state and, until their kernels reseed, the
        // same host entropy. Only the VM ID each reads differs.
        static byte[] CloneOutput(byte[] newId)
        {
            var kernel = new ForkKernel(new byte[32], entropy: new FixedEntropy());
            var fork = new ForkEvent("vmgenid (/dev/mem)", 2, newId, "VM generation ID changed, generation 2");
            Assert.True(kernel.AddVmForkRandomness(VmForkId.For(fork, new FixedEntropy())));
            return Bytes.Of(kernel.Random, 64);
        }
        Assert.NotEqual(CloneOutput(IdB), CloneOutput(IdC));
        // Negative control: the same ID (what a vmgenid-less guest has) leaves the clones identical.
        Assert.Equal(CloneOutput(IdB), CloneOutput(IdB));
    }

    [Fact]
    public void Auto_prefers_vmgenid_to_vmclock_and_hands_it_out_as_the_pull_counter()
    {
        using var tmp = new TempDir();
        ForkSourcePaths paths = ForkSourceSelectionTests.Paths(tmp);
        var fw = new VmGenIdFirmwareFiles(tmp);
        Assert.Equal(fw.Paths, paths.VmGenId);
        fw.WriteQemuSsdt("SSDT", Vgia);
        fw.CreateMemory(QemuId, IdA);
        using var page = new VmClockPageFile(paths.VmClock, VmClockAbi.FlagVmGenCounterPresent, 41);

        var choice = ForkSourceSelection.Choose(null, paths, new HostKernel("6.1.0-57-amd64", true));
        using var chosen = choice.Source;
        Assert.Equal(ForkSourceKind.VmGenId, choice.Kind);
        Assert.IsType<VmGenIdSource>(choice.PullCounter);
        Assert.Equal(1UL, choice.PullCounter!.Read());
        Assert.Contains("vmclock: not available: usable, but vmgenid comes first", choice.Describe());
        Assert.Contains($"fork source (auto): vmgenid ({fw.Paths.Memory}), a pull counter", choice.Describe());

        var requested = ForkSourceSelection.Choose(ForkSourceKind.VmGenId, paths);
        using var again = requested.Source;
        Assert.Null(requested.Failure);
        Assert.NotNull(requested.PullCounter);
    }
}
