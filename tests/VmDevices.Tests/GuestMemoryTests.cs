namespace VmDevices.Tests;

public class GuestMemoryTests
{
    [Fact]
    public void Access_inside_memory_round_trips_little_endian()
    {
        var m = new GuestMemory(4096);
        Assert.True(m.TryWriteUInt64(8, 0x0102030405060708UL, "t"));
        Span<byte> raw = stackalloc byte[8];
        Assert.True(m.TryRead(8, raw, "t"));
        Assert.Equal(new byte[] { 8, 7, 6, 5, 4, 3, 2, 1 }, raw.ToArray());
        Assert.True(m.TryReadUInt32(12, out uint hi, "t"));
        Assert.Equal(0x01020304u, hi);
        Assert.Empty(m.Faults);
    }

    [Theory]
    [InlineData(4096UL, 1UL)]
    [InlineData(4095UL, 2UL)]
    [InlineData(ulong.MaxValue, 2UL)]
    [InlineData(0UL, 4097UL)]
    [InlineData(8UL, ulong.MaxValue - 4UL)]
    public void Access_outside_memory_is_refused_and_reported(ulong address, ulong length)
    {
        var m = new GuestMemory(4096);
        GuestMemoryFault? seen = null;
        m.Faulted += f => seen = f;
        Assert.False(m.Check(address, length, GuestMemoryAccess.Write, "dev"));
        Assert.Equal(new GuestMemoryFault(address, length, GuestMemoryAccess.Write, "dev"), seen);
        Assert.Single(m.Faults);
        Assert.Equal(1, m.FaultCount);
    }

    [Fact]
    public void Refused_write_changes_nothing()
    {
        var m = new GuestMemory(16);
        Assert.False(m.TryWrite(12, new byte[8] { 1, 1, 1, 1, 1, 1, 1, 1 }, "dev"));
        Assert.All(m.Capture(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Fault_log_is_bounded_but_counted()
    {
        var m = new GuestMemory(16);
        for (int i = 0; i < GuestMemory.MaxRecordedFaults + 10; i++)
            m.TryReadUInt16(1000, out _, "hostile");
        Assert.Equal(GuestMemory.MaxRecordedFaults, m.Faults.Count);
        Assert.Equal(GuestMemory.MaxRecordedFaults + 10, m.FaultCount);
    }

    [Fact]
    public void Capture_and_restore_copy_every_byte()
    {
        var a = new GuestMemory(64);
        a.TryWriteUInt32(60, 0xdeadbeef, "t");
        byte[] image = a.Capture();
        a.TryWriteUInt32(60, 0, "t");
        var b = new GuestMemory(64);
        b.Restore(image);
        Assert.True(b.TryReadUInt32(60, out uint v, "t"));
        Assert.Equal(0xdeadbeefu, v);
        Assert.Throws<ArgumentException>(() => new GuestMemory(32).Restore(image));
    }

    [Fact]
    public void Heap_aligns_and_reports_exhaustion_with_zero()
    {
        var m = new GuestMemory(0x2000);
        var heap = new GuestHeap(m, 0x1001, 0x2000);
        Assert.Equal(0x1010UL, heap.Allocate(16, 16));
        Assert.Equal(0x1020UL, heap.Allocate(4, 4));
        Assert.Equal(0UL, heap.Allocate(0x2000, 8));
        Assert.Equal(0x1024UL, heap.Next);
    }
}
