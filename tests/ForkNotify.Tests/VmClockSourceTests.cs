using ForkNotify;
using TestSupport;
using Xunit;

namespace ForkNotify.Tests;

public sealed class VmClockSourceTests
{
    private const ulong GenFlags = VmClockAbi.FlagVmGenCounterPresent | VmClockAbi.FlagTimeMonotonic;

    [Fact]
    public void Abi_offsets_match_the_kernel_header()
    {
        Assert.Equal(0x0c, VmClockAbi.SeqCountOffset);
        Assert.Equal(0x10, VmClockAbi.DisruptionMarkerOffset);
        Assert.Equal(0x18, VmClockAbi.FlagsOffset);
        Assert.Equal(0x68, VmClockAbi.VmGenerationCounterOffset);
        Assert.Equal(0x70, VmClockAbi.StructSize);
        Assert.Equal(0x100UL, VmClockAbi.FlagVmGenCounterPresent);
        Assert.Equal(0x200UL, VmClockAbi.FlagNotificationPresent);
        Assert.Equal(0x4b4c4356u, VmClockAbi.Magic);
        Assert.Equal("VCLK", System.Text.Encoding.ASCII.GetString(BitConverter.GetBytes(VmClockAbi.Magic))); // little-endian bytes
    }

    [Fact]
    public void Missing_device_is_not_available_and_never_throws()
    {
        using var tmp = new TempDir();
        using var source = new VmClockSource(tmp.File("vmclock0"));
        ForkSourceAvailability a = source.Probe();
        Assert.False(a.IsAvailable);
        Assert.Contains("No such file", a.Reason);
        Assert.StartsWith("not available: ", a.ToString());
        Assert.Equal(VmClockSource.Unreadable, source.Read());
        Assert.Throws<InvalidOperationException>(() => source.Start(_ => { }));
    }

    [Fact]
    public void Real_host_vmclock_probe_does_not_crash()
    {
        using var source = new VmClockSource();
        ForkSourceAvailability a = source.Probe(); // absent on these machines; either answer is fine
        Assert.True(a.IsAvailable || !string.IsNullOrEmpty(a.Reason));
    }

    [Fact]
    public void Wrong_magic_short_file_and_missing_flag_are_not_available()
    {
        using var tmp = new TempDir();
        using (new VmClockPageFile(tmp.File("bad"), GenFlags, 1, magic: 0x12345678)) { }
        using (var s = new VmClockSource(tmp.File("bad")))
            Assert.Contains("bad magic", s.Probe().Reason);

        File.WriteAllBytes(tmp.File("short"), new byte[16]);
        using (var s = new VmClockSource(tmp.File("short")))
            Assert.Contains("only 16 bytes", s.Probe().Reason);

        using (new VmClockPageFile(tmp.File("noflag"), VmClockAbi.FlagTimeMonotonic, 1)) { }
        using (var s = new VmClockSource(tmp.File("noflag")))
            Assert.Contains("VM_GEN_COUNTER_PRESENT", s.Probe().Reason);
    }

    [Fact]
    public void Reads_the_generation_and_fails_safe_when_the_seqcount_is_wedged()
    {
        using var tmp = new TempDir();
        using var page = new VmClockPageFile(tmp.File("vmclock0"), GenFlags, 0x1000005);
        using var source = new VmClockSource(page.Path);
        Assert.Equal(VmClockSource.Unreadable, source.Read()); // not probed yet
        Assert.True(source.Probe().IsAvailable);
        Assert.Equal(0x1000005UL, source.Read());

        page.PostRestore();
        Assert.Equal(0x1000006UL, source.Read());

        page.WedgeOdd();
        Assert.False(source.TryReadGeneration(out _));
        Assert.Equal(VmClockSource.Unreadable, source.Read());
        page.Unwedge();
        Assert.Equal(0x1000006UL, source.Read());
    }

    [Fact]
    public void Probe_refuses_a_page_stuck_mid_update()
    {
        using var tmp = new TempDir();
        using var page = new VmClockPageFile(tmp.File("vmclock0"), GenFlags, 7);
        page.WedgeOdd();
        using var source = new VmClockSource(page.Path);
        Assert.Contains("never settled", source.Probe().Reason);
    }

    [Fact]
    public void Seqcount_reader_never_returns_a_torn_value_under_a_concurrent_writer()
    {
        using var tmp = new TempDir();
        using var page = new VmClockPageFile(tmp.File("vmclock0"), GenFlags, 0);
        using var source = new VmClockSource(page.Path);
        Assert.True(source.Probe().IsAvailable);

        const uint updates = 200_000;
        using var stop = new CancellationTokenSource();
        var writer = new Thread(() =>
        {
            for (uint v = 1; v <= updates && !stop.IsCancellationRequested; v++)
            {
                page.TornUpdate(v);
                Thread.SpinWait(50); // a stable window between updates, as a real hypervisor leaves
            }
        });
        writer.Start();

        long good = 0, wedged = 0, torn = 0;
        var distinct = new HashSet<ulong>();
        ulong previous = 0;
        bool backwards = false;
        while (writer.IsAlive)
        {
            if (!source.TryReadGeneration(out ulong g)) { wedged++; continue; }
            good++;
            distinct.Add(g);
            if ((uint)g != (uint)(g >> 32)) torn++;
            if (g < previous) backwards = true;
            previous = g;
        }
        writer.Join();

        Assert.Equal(0, torn);
        Assert.False(backwards);
        // the reader really ran alongside the writer (a one-core scheduler could starve it, hence a low bar)
        Assert.True(distinct.Count >= 20, $"only {distinct.Count} distinct values in {good} consistent reads ({wedged} gave up)");
        Assert.Equal(((ulong)updates << 32) | updates, source.Read());
    }

    /// <summary>
    /// Negative control for the stress test above: a reader that ignores the seqcount and loads the
    /// two halves separately does see torn values from the same writer, so "0 torn" above means
    /// something. Probabilistic (it needs the two threads to overlap), hence Long.
    /// </summary>
    [Fact]
    [Trait("Category", "Long")]
    public unsafe void Negative_control_a_reader_without_the_seqcount_sees_torn_values()
    {
        using var tmp = new TempDir();
        using var page = new VmClockPageFile(tmp.File("vmclock0"), GenFlags, 0);
        using var reader = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(page.Path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        using var view = reader.CreateViewAccessor(0, VmClockAbi.PageSize, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        var writer = new Thread(() =>
        {
            for (uint v = 1; v <= 200_000; v++) { page.TornUpdate(v); Thread.SpinWait(50); }
        });
        writer.Start();
        long torn = 0;
        while (writer.IsAlive)
        {
            uint low = view.ReadUInt32(VmClockAbi.VmGenerationCounterOffset);
            uint high = view.ReadUInt32(VmClockAbi.VmGenerationCounterOffset + 4);
            if (low != high) torn++;
        }
        writer.Join();
        Assert.True(torn > 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Start_reports_each_generation_change_once(bool notificationFlag)
    {
        using var tmp = new TempDir();
        ulong flags = GenFlags | (notificationFlag ? VmClockAbi.FlagNotificationPresent : 0);
        using var page = new VmClockPageFile(tmp.File("vmclock0"), flags, 41);
        using var source = new VmClockSource(page.Path, TimeSpan.FromMilliseconds(5));
        var events = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
        source.Start(events.Enqueue);

        page.PostRestore();
        Assert.True(Eventually.True(() => events.Count >= 1));
        page.PostRestore();
        Assert.True(Eventually.True(() => events.Count >= 2));
        source.Dispose();

        Assert.Equal([42UL, 43UL], events.Select(e => e.Generation!.Value));
        Assert.All(events, e => Assert.Contains("vmclock", e.Source));
    }

    [Fact]
    public void A_throwing_handler_does_not_stop_the_source()
    {
        using var tmp = new TempDir();
        using var page = new VmClockPageFile(tmp.File("vmclock0"), GenFlags, 1);
        var logger = new ListLogger();
        using var source = new VmClockSource(page.Path, TimeSpan.FromMilliseconds(5), logger);
        int calls = 0;
        source.Start(e => { Interlocked.Increment(ref calls); throw new InvalidOperationException("handler bug"); });
        page.PostRestore();
        Assert.True(Eventually.True(() => Volatile.Read(ref calls) == 1));
        page.PostRestore();
        Assert.True(Eventually.True(() => Volatile.Read(ref calls) == 2));
        Assert.True(Eventually.True(() => { lock (logger.Entries) return logger.Entries.Count(e => e.Exception is InvalidOperationException) == 2; }));
    }
}
