using System.Buffers.Binary;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

/// <summary>
/// SysGenID against a stand-in: a FIFO the test writes each new u32 generation into (the device's
/// blocking read) and a FIFO where the source's 32-bit acknowledgements land (the device's write).
/// </summary>
public sealed class SysGenIdSourceTests
{
    private static (TempDir, string gen, string ack) Fifos()
    {
        var tmp = new TempDir();
        string gen = tmp.File("sysgenid"), ack = tmp.File("sysgenid.ack");
        Assert.Equal(0, LibC.MkFifo(gen, 0x180));
        Assert.Equal(0, LibC.MkFifo(ack, 0x180));
        return (tmp, gen, ack);
    }

    private static void WriteU32(FileStream fifo, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value); // native u32 on this little-endian host
        fifo.Write(b);
        fifo.Flush();
    }

    private static uint ReadU32(FileStream fifo)
    {
        var b = new byte[4];
        Task read = Task.Run(() => fifo.ReadExactly(b));
        Assert.True(read.Wait(TimeSpan.FromSeconds(15)), "no acknowledgement");
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    [Fact]
    public void Missing_device_is_not_available()
    {
        using var tmp = new TempDir();
        using var source = new SysGenIdSource(tmp.File("sysgenid"));
        ForkSourceAvailability a = source.Probe();
        Assert.False(a.IsAvailable);
        Assert.Contains("No such file", a.Reason);
        using var real = new SysGenIdSource();
        Assert.True(real.Probe().IsAvailable || real.Probe().Reason!.Contains("/dev/sysgenid"));
    }

    [Fact]
    public void Missing_ack_path_is_not_available()
    {
        (TempDir tmp, string gen, _) = Fifos();
        using (tmp)
        using (var source = new SysGenIdSource(gen, tmp.File("nope")))
            Assert.Contains("nope", source.Probe().Reason);
    }

    [Fact]
    public void Reports_each_new_generation_and_acknowledges_it()
    {
        (TempDir tmp, string gen, string ack) = Fifos();
        using (tmp)
        {
            using var source = new SysGenIdSource(gen, ack);
            var events = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
            source.Start(events.Enqueue);
            using var writer = new FileStream(gen, FileMode.Open, FileAccess.Write);
            using var acks = new FileStream(ack, FileMode.Open, FileAccess.Read);

            // AWS-LC's values: each exercises another byte of the u32
            uint[] generations = [0x03, 0x103, 0x10004, 0x1000005, 0xFFFFFFFF];
            foreach (uint g in generations)
            {
                WriteU32(writer, g);
                Assert.Equal(g, ReadU32(acks)); // acknowledged with the value read
            }
            Assert.Equal(generations.Select(g => (ulong?)g), events.Select(e => e.Generation));

            // the same value again (the device repeats it until acked): acked, not a new fork
            WriteU32(writer, 0xFFFFFFFF);
            Assert.Equal(0xFFFFFFFFu, ReadU32(acks));
            Assert.Equal(generations.Length, events.Count);
            Assert.Equal(generations.Length + 1, source.Acknowledged);
        }
    }

    [Fact]
    public void Dispose_stops_a_source_blocked_in_read()
    {
        (TempDir tmp, string gen, string ack) = Fifos();
        using (tmp)
        {
            var source = new SysGenIdSource(gen, ack);
            source.Start(_ => { });
            Task dispose = Task.Run(source.Dispose);
            Assert.True(dispose.Wait(TimeSpan.FromSeconds(10)));
            Assert.Throws<InvalidOperationException>(() => new SysGenIdSource(tmp.File("gone")).Start(_ => { }));
        }
    }
}
