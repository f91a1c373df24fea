using System.Buffers.Binary;

namespace VmDevices.Tests;

/// <summary>
/// The test plays a hostile (or buggy) guest: it lays out rings and descriptors by hand and kicks.
/// The device must refuse and report, never throw, never touch memory outside the guest.
/// </summary>
public class VirtqueueRobustnessTests
{
    private const ushort Size = 4;
    private const ulong Desc = 0x1000, Avail = 0x1100, Used = 0x1200, Data = 0x2000;

    private sealed class HostileGuest
    {
        public HostileGuest(bool leak = true)
        {
            Memory = new GuestMemory(0x4000);
            Irq = new InterruptLine("irq", Scheduler);
            Irq.Connect(v => Interrupts.Add(v));
            Device = new VirtioRngDevice(Memory, Irq, new DeterministicEntropy(3), queueNumMax: Size, offerLeak: leak);
            Device.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver);
            Device.WriteDriverFeatures(Device.DeviceFeatures);
            Device.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk);
            for (int q = 0; q < Device.QueueCount; q++)
                Assert.True(Device.ConfigureQueue(q, Layout(q)));
            Device.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver | VirtioStatus.FeaturesOk | VirtioStatus.DriverOk);
        }

        public DeterministicScheduler Scheduler { get; } = new(1);
        public GuestMemory Memory { get; }
        public InterruptLine Irq { get; }
        public VirtioRngDevice Device { get; }
        public List<uint> Interrupts { get; } = new();

        public static VirtqAddresses Layout(int q) =>
            new(Size, Desc + 0x300ul * (ulong)q, Avail + 0x300ul * (ulong)q, Used + 0x300ul * (ulong)q);

        public void WriteDescriptor(int q, ushort index, ulong addr, uint len, ushort flags, ushort next)
        {
            Span<byte> d = stackalloc byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(d, addr);
            BinaryPrimitives.WriteUInt32LittleEndian(d[8..], len);
            BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
            BinaryPrimitives.WriteUInt16LittleEndian(d[14..], next);
            Assert.True(Memory.TryWrite(Layout(q).DescriptorTable + 16ul * index, d, "guest"));
        }

        /// <summary>Publishes <paramref name="head"/> at avail slot <paramref name="slot"/> and sets avail.idx.</summary>
        public void MakeAvailable(int q, ushort slot, ushort head, ushort newIdx)
        {
            Memory.TryWriteUInt16(Layout(q).AvailRing + 4 + 2ul * (ulong)(slot % Size), head, "guest");
            Memory.TryWriteUInt16(Layout(q).AvailRing + 2, newIdx, "guest");
        }

        public (uint Id, uint Len) UsedElement(int q, int slot)
        {
            Memory.TryReadUInt32(Layout(q).UsedRing + 4 + 8ul * (ulong)(slot % Size), out uint id, "guest");
            Memory.TryReadUInt32(Layout(q).UsedRing + 8 + 8ul * (ulong)(slot % Size), out uint len, "guest");
            return (id, len);
        }

        public ushort UsedIdx(int q)
        {
            Memory.TryReadUInt16(Layout(q).UsedRing + 2, out ushort idx, "guest");
            return idx;
        }

        public byte[] Read(ulong addr, int len)
        {
            var b = new byte[len];
            Assert.True(Memory.TryRead(addr, b, "guest"));
            return b;
        }

        public void AssertRefused(VirtqError error)
        {
            Assert.Equal(error, Assert.Single(Device.Errors).Error);
            Assert.True((Device.Status & VirtioStatus.DeviceNeedsReset) != 0);
            Scheduler.RunUntilIdle();
            Assert.Contains((uint)VirtioInterrupt.ConfigChange, Interrupts);
        }
    }

    [Fact]
    public void Chained_writable_descriptors_are_all_filled()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(0, 0, Data, 5, Virtq.DescFlagWrite | Virtq.DescFlagNext, 2);
        g.WriteDescriptor(0, 2, Data + 0x100, 7, Virtq.DescFlagWrite | Virtq.DescFlagNext, 1);
        g.WriteDescriptor(0, 1, Data + 0x200, 20, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(0, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(0);

        Assert.Equal(1, g.UsedIdx(0));
        Assert.Equal((0u, 32u), g.UsedElement(0, 0));
        var expected = new byte[32];
        new DeterministicEntropy(3).Fill(expected);
        Assert.Equal(expected[..5], g.Read(Data, 5));
        Assert.Equal(expected[5..12], g.Read(Data + 0x100, 7));
        Assert.Equal(expected[12..], g.Read(Data + 0x200, 20));
        Assert.Equal(0, g.Read(Data + 5, 1)[0]); // nothing past the buffer
        Assert.Empty(g.Device.Errors);
    }

    [Fact]
    public void Copy_on_leak_gathers_and_scatters_across_chained_buffers()
    {
        var g = new HostileGuest();
        g.Memory.TryWrite(Data, "abc"u8, "guest");
        g.Memory.TryWrite(Data + 0x10, "defgh"u8, "guest");
        g.WriteDescriptor(1, 0, Data, 3, Virtq.DescFlagNext, 1);
        g.WriteDescriptor(1, 1, Data + 0x10, 5, Virtq.DescFlagNext, 2);
        g.WriteDescriptor(1, 2, Data + 0x100, 6, Virtq.DescFlagWrite | Virtq.DescFlagNext, 3);
        g.WriteDescriptor(1, 3, Data + 0x200, 2, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(1, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(1);
        Assert.Equal(0, g.UsedIdx(1)); // held until the leak

        Assert.Equal(1, g.Device.SignalEntropyLeak(TimeSpan.Zero));
        Assert.Equal((0u, 8u), g.UsedElement(1, 0));
        Assert.Equal("abcdef"u8.ToArray(), g.Read(Data + 0x100, 6));
        Assert.Equal("gh"u8.ToArray(), g.Read(Data + 0x200, 2));
    }

    [Fact]
    public void Copy_on_leak_with_unequal_sizes_completes_with_length_zero_and_copies_nothing()
    {
        var g = new HostileGuest();
        g.Memory.TryWrite(Data, "abcd"u8, "guest");
        g.WriteDescriptor(1, 0, Data, 4, Virtq.DescFlagNext, 1);
        g.WriteDescriptor(1, 1, Data + 0x100, 8, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(1, 0, head: 0, newIdx: 1);
        g.Device.SignalEntropyLeak(TimeSpan.Zero);
        Assert.Equal((0u, 0u), g.UsedElement(1, 0));
        Assert.Equal(new byte[8], g.Read(Data + 0x100, 8));
        Assert.Empty(g.Device.Errors);
    }

    [Fact]
    public void Buffers_added_to_the_signalled_queue_complete_at_once()
    {
        var g = new HostileGuest();
        g.Device.SignalEntropyLeak(TimeSpan.Zero); // nothing armed; leakq.1 is now the signalled one
        g.WriteDescriptor(1, 0, Data, 16, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(1, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(1);
        Assert.Equal((0u, 16u), g.UsedElement(1, 0));
        g.WriteDescriptor(2, 0, Data + 0x100, 16, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(2, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(2);
        Assert.Equal(0, g.UsedIdx(2)); // the active queue holds
    }

    [Fact]
    public void Descriptor_pointing_outside_guest_memory_is_refused_and_reported()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(0, 0, 0x3ff0, 0x20, Virtq.DescFlagWrite, 0); // runs 16 bytes past the end
        g.MakeAvailable(0, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(0);
        g.AssertRefused(VirtqError.OutOfGuestMemory);
        Assert.Contains(g.Memory.Faults, f => f.Address == 0x3ff0 && f.Length == 0x20 && f.Access == GuestMemoryAccess.Write);
        Assert.Equal(0, g.UsedIdx(0));
        // Once broken, further kicks and leaks do nothing.
        g.Device.QueueNotify(0);
        Assert.Equal(-1, g.Device.SignalEntropyLeak(TimeSpan.Zero));
        Assert.Single(g.Device.Errors);
    }

    [Fact]
    public void Descriptor_address_that_overflows_is_refused()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(1, 0, ulong.MaxValue - 3, 8, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(1, 0, head: 0, newIdx: 1);
        Assert.Equal(-1, g.Device.SignalEntropyLeak(TimeSpan.Zero));
        g.AssertRefused(VirtqError.OutOfGuestMemory);
        Assert.Equal(VirtioRngDevice.LeakQueue1, g.Device.ActiveLeakQueue);
        Assert.Equal(0, g.Device.LeakEvents);
    }

    [Fact]
    public void Looping_descriptor_chain_is_refused()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(0, 0, Data, 4, Virtq.DescFlagWrite | Virtq.DescFlagNext, 1);
        g.WriteDescriptor(0, 1, Data, 4, Virtq.DescFlagWrite | Virtq.DescFlagNext, 0);
        g.MakeAvailable(0, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(0);
        g.AssertRefused(VirtqError.DescriptorLoop);
    }

    [Fact]
    public void Self_looping_descriptor_is_refused()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(1, 3, Data, 4, Virtq.DescFlagWrite | Virtq.DescFlagNext, 3);
        g.MakeAvailable(1, 0, head: 3, newIdx: 1);
        g.Device.SignalEntropyLeak(TimeSpan.Zero);
        g.AssertRefused(VirtqError.DescriptorLoop);
    }

    [Fact]
    public void Next_index_beyond_the_queue_is_refused()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(0, 0, Data, 4, Virtq.DescFlagWrite | Virtq.DescFlagNext, Size);
        g.MakeAvailable(0, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(0);
        g.AssertRefused(VirtqError.BadNextIndex);
    }

    [Fact]
    public void Head_index_beyond_the_queue_is_refused()
    {
        var g = new HostileGuest();
        g.MakeAvailable(0, 0, head: 9, newIdx: 1);
        g.Device.QueueNotify(0);
        g.AssertRefused(VirtqError.BadHeadIndex);
    }

    [Fact]
    public void Available_index_jumping_more_than_the_queue_size_is_refused()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(0, 0, Data, 4, Virtq.DescFlagWrite, 0);
        g.MakeAvailable(0, 0, head: 0, newIdx: Size + 1);
        g.Device.QueueNotify(0);
        g.AssertRefused(VirtqError.BadAvailIndex);
    }

    [Fact]
    public void Indirect_descriptors_are_refused_because_they_were_not_offered()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(0, 0, Data, 32, Virtq.DescFlagIndirect, 0);
        g.MakeAvailable(0, 0, head: 0, newIdx: 1);
        g.Device.QueueNotify(0);
        g.AssertRefused(VirtqError.IndirectNotNegotiated);
    }

    [Fact]
    public void Readable_after_writable_is_refused()
    {
        var g = new HostileGuest();
        g.WriteDescriptor(1, 0, Data, 4, Virtq.DescFlagWrite | Virtq.DescFlagNext, 1);
        g.WriteDescriptor(1, 1, Data + 8, 4, 0, 0);
        g.MakeAvailable(1, 0, head: 0, newIdx: 1);
        g.Device.SignalEntropyLeak(TimeSpan.Zero);
        g.AssertRefused(VirtqError.ReadableAfterWritable);
    }

    [Theory]
    [InlineData(3, Desc, Avail, Used)]          // not a power of two
    [InlineData(8, Desc, Avail, Used)]          // above QueueNumMax
    [InlineData(4, Desc + 8, Avail, Used)]      // descriptor table not 16-aligned
    [InlineData(4, Desc, Avail + 1, Used)]      // avail ring not 2-aligned
    [InlineData(4, Desc, Avail, Used + 2)]      // used ring not 4-aligned
    [InlineData(4, Desc, Avail, 0x3ff0)]        // used ring runs past the end
    [InlineData(4, 0xfffffffffffffff0, Avail, Used)] // descriptor table wraps the address space
    public void Illegal_queue_layouts_are_refused(ushort size, ulong desc, ulong avail, ulong used)
    {
        var k = new DeterministicScheduler(1);
        var m = new GuestMemory(0x4000);
        var d = new VirtioRngDevice(m, new InterruptLine("i", k), new DeterministicEntropy(1), queueNumMax: Size);
        d.WriteStatus(VirtioStatus.Acknowledge | VirtioStatus.Driver);
        Assert.False(d.ConfigureQueue(0, new VirtqAddresses(size, desc, avail, used)));
        Assert.False(d.ConfigureQueue(7, HostileGuest.Layout(0)));
    }

    [Fact]
    public void Driver_sees_the_broken_device_and_stops()
    {
        var k = new KernelRig();
        var m = new GuestMemory(0x8000);
        var heap = new GuestHeap(m, 0x1000, m.Size);
        var irq = new InterruptLine("irq", k.Scheduler);
        var dev = new VirtioRngDevice(m, irq, new DeterministicEntropy(1));
        var drv = new VirtioRngDriver(k.Kernel, m, dev, irq);
        Assert.True(drv.Probe(heap, 4));
        // Corrupt the driver's armed fill descriptor (leakq.1, descriptor 0) to point outside memory.
        var layout = drv.Capture().Layout.Rings[1];
        m.TryWriteUInt64(layout.DescriptorTable, 0x7fff_0000, "corruption");
        dev.SignalEntropyLeak(TimeSpan.Zero);
        k.Scheduler.RunUntilIdle();
        Assert.True(drv.Broken);
        Assert.Equal(0, drv.Read(new byte[8]));
        Assert.Equal(0, k.PostVmForkCount);
    }
}
