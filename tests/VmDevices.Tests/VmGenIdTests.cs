using ForkNotify;

namespace VmDevices.Tests;

public class VmGenIdTests
{
    private const ulong Blob = 0x1000;

    private sealed class VmGenIdRig
    {
        public VmGenIdRig(bool counter = true, byte[]? id = null)
        {
            Memory = new GuestMemory(0x4000);
            Line = new InterruptLine("vmgenid", K.Scheduler);
            Device = new VmGenIdDevice(Memory, Line, Blob, counter, id ?? Id(1));
            Driver = new VmGenIdDriver(K.Kernel, Memory, Device);
            Assert.True(Driver.Probe());
        }

        public KernelRig K { get; } = new();
        public GuestMemory Memory { get; }
        public InterruptLine Line { get; }
        public VmGenIdDevice Device { get; }
        public VmGenIdDriver Driver { get; }

        public byte[] IdInMemory()
        {
            var b = new byte[16];
            Assert.True(Memory.TryRead(Device.IdAddress, b, "test"));
            return b;
        }
    }

    private static byte[] Id(byte fill) => Enumerable.Repeat(fill, 16).ToArray();

    // Known answers: QEMU stores guid= text with the first three fields byte-swapped (qemu_uuid_bswap).
    // The first is the example of virt-v2v docs/vm-generation-id-across-hypervisors.txt, the second
    // the GUID of QEMU's tests/qtest/vmgenid-test.c.
    [Theory]
    [InlineData("01020304-0506-0708-090a-0b0c0d0e0f00", "0403020106050807090A0B0C0D0E0F00")]
    [InlineData("324e6eaf-d1d1-4bf6-bf41-b9bb6c91fb87", "AF6E4E32D1D1F64BBF41B9BB6C91FB87")]
    public void Guid_text_is_stored_in_qemu_byte_order(string guid, string memoryHex)
    {
        byte[] id = VmGenIdDevice.IdFromText(guid, OsRandomGenerator.Instance);
        Assert.Equal(memoryHex, Convert.ToHexString(id));
        var rig = new VmGenIdRig(id: id);
        Assert.Equal(memoryHex, Convert.ToHexString(rig.IdInMemory()));
    }

    [Fact]
    public void Auto_draws_a_random_id()
    {
        var a = VmGenIdDevice.IdFromText("auto", new DeterministicEntropy(1));
        var b = VmGenIdDevice.IdFromText("auto", new DeterministicEntropy(2));
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void Acpi_ids_and_ADDR_follow_the_spec()
    {
        var rig = new VmGenIdRig();
        Assert.Equal("VMGENCTR", rig.Device.HardwareId);
        Assert.Equal("VM_Gen_Counter", rig.Device.CompatibleId);
        Assert.Equal(0x0Fu, rig.Device.EvaluateStatus());
        Assert.True(rig.Device.TryEvaluatePackage("ADDR", out ulong[] addr));
        Assert.Equal([Blob + 40, 0UL], addr);
        Assert.Equal(0UL, (addr[0] | addr[1] << 32) % 8);
        Assert.True(rig.Device.TryEvaluatePackage("CTRA", out ulong[] ctra));
        Assert.Equal([Blob + 0x1000, 0UL], ctra);
        Assert.False(rig.Device.TryEvaluatePackage("XXXX", out _));
    }

    [Fact]
    public void High_ADDR_half_is_shifted_by_32()
    {
        var fake = new FakeAcpi("VMGENCTR", null, [0x40, 0x1], new InterruptLine("n", new DeterministicScheduler(1)));
        var k = new KernelRig();
        var driver = new VmGenIdDriver(k.Kernel, new GuestMemory(0x2000), fake);
        // 0x1_0000_0040 is far outside this 8 KiB guest: a driver that ignored the high half would accept it.
        Assert.False(driver.Probe());
    }

    [Fact]
    public void Counter_page_is_absent_unless_configured()
    {
        var rig = new VmGenIdRig(counter: false);
        Assert.False(rig.Device.TryEvaluatePackage("CTRA", out _));
        Assert.Null(rig.Driver.GenerationCounter);
    }

    [Theory]
    [InlineData("QEMUVGID", "VM_Gen_Counter", true)] // QEMU: matched through the upper-cased _CID
    [InlineData("VMGENCTR", null, true)]             // Firecracker, Linux 6.10+
    [InlineData("FCVMGID", null, false)]             // old Firecracker HID: not matched
    public void Driver_matches_ids_like_linux(string hid, string? cid, bool matches) =>
        Assert.Equal(matches, VmGenIdDriver.Matches(new FakeAcpi(hid, cid, [0, 0], null!)));

    [Fact]
    public void Probe_refuses_an_ADDR_outside_guest_memory_or_of_wrong_shape()
    {
        var k = new KernelRig();
        var line = new InterruptLine("n", k.Scheduler);
        var memory = new GuestMemory(0x2000);
        Assert.False(new VmGenIdDriver(k.Kernel, memory, new FakeAcpi("VMGENCTR", null, [0x1ff8, 0], line)).Probe());
        Assert.False(new VmGenIdDriver(k.Kernel, memory, new FakeAcpi("VMGENCTR", null, [0x100], line)).Probe());
        Assert.True(new VmGenIdDriver(k.Kernel, memory, new FakeAcpi("VMGENCTR", null, [0x1ff0, 0], line)).Probe());
    }

    [Fact]
    public void New_id_is_in_memory_before_the_notify_is_handled_and_then_runs_the_fork_path()
    {
        var rig = new VmGenIdRig();
        ulong gen0 = rig.K.Kernel.Generation.Current;
        Assert.Equal(0UL, rig.Driver.GenerationCounter!.Read());

        rig.Device.PostLoad(Id(2), TimeSpan.FromMilliseconds(5));

        // Guest paused until now: memory and counter are already new, the push path has not run.
        Assert.Equal(Id(2), rig.IdInMemory());
        Assert.Equal(1UL, rig.Driver.GenerationCounter.Read());
        Assert.Equal(gen0, rig.K.Kernel.Generation.Current);
        Assert.Equal(0, rig.K.PostVmForkCount);
        Assert.Equal(Id(1), rig.Driver.CurrentId.ToArray());

        rig.K.Scheduler.RunFor(TimeSpan.FromMilliseconds(4));
        Assert.Equal(0, rig.K.PostVmForkCount);
        rig.K.Scheduler.RunFor(TimeSpan.FromMilliseconds(1));

        Assert.Equal(1, rig.K.PostVmForkCount);
        Assert.Equal(TimeSpan.FromMilliseconds(5), rig.K.Events.Single().At);
        Assert.Equal(gen0 + 1, rig.K.Kernel.Generation.Current);
        Assert.Equal(Id(2), rig.Driver.CurrentId.ToArray());
        Assert.Equal(1, rig.Driver.ForksHandled);
    }

    [Fact]
    public void Spurious_notify_with_the_same_id_does_nothing()
    {
        var rig = new VmGenIdRig();
        ulong gen0 = rig.K.Kernel.Generation.Current;
        rig.Device.NotifySpurious(TimeSpan.FromMilliseconds(1));
        rig.Device.PostLoad(Id(1), TimeSpan.FromMilliseconds(2)); // restore with unchanged guid (QEMU without guid=auto)
        rig.K.Scheduler.RunUntilIdle();
        Assert.Equal(2, rig.Driver.SpuriousIgnored);
        Assert.Equal(0, rig.Driver.ForksHandled);
        Assert.Equal(gen0, rig.K.Kernel.Generation.Current);
        Assert.Equal(0, rig.K.PostVmForkCount);
        Assert.Equal(0UL, rig.Driver.GenerationCounter!.Read());
    }

    [Fact]
    public void Every_new_id_is_one_fork_and_one_counter_step()
    {
        var rig = new VmGenIdRig();
        for (byte i = 2; i < 12; i++)
        {
            rig.Device.PostLoad(Id(i), TimeSpan.FromMilliseconds(1));
            rig.K.Scheduler.RunUntilIdle();
        }
        Assert.Equal(10, rig.K.PostVmForkCount);
        Assert.Equal(10UL, rig.Driver.GenerationCounter!.Read());
        // The counter is a 32-bit word in the CTRA page: the first four bytes of that page.
        Assert.True(rig.Memory.TryReadUInt32(rig.Device.CounterAddress, out uint raw, "test"));
        Assert.Equal(10u, raw);
    }

    [Fact]
    public void Device_refuses_a_blob_outside_memory_or_misaligned()
    {
        var m = new GuestMemory(0x2000);
        var line = new InterruptLine("n", new DeterministicScheduler(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VmGenIdDevice(m, line, 0x1000, withCounter: true, Id(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new VmGenIdDevice(m, line, 0x1008, withCounter: false, Id(1)));
        _ = new VmGenIdDevice(m, line, 0x1000, withCounter: false, Id(1));
    }

    private sealed class FakeAcpi(string hid, string? cid, ulong[] addr, InterruptLine line) : IAcpiDevice
    {
        public string HardwareId => hid;
        public string? CompatibleId => cid;
        public InterruptLine NotifyLine => line;
        public uint EvaluateStatus() => 0x0F;

        public bool TryEvaluatePackage(string name, out ulong[] package)
        {
            package = name == "ADDR" ? addr : [];
            return name == "ADDR";
        }
    }
}
