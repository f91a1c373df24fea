using System.Diagnostics;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class KmsgSourceTests
{
    [Theory]
    [InlineData("5,341,1454643,-;random: crng reseeded due to virtual machine fork", 5, 0, 341UL, 1454643UL, KmsgSource.ForkLine)]
    [InlineData("14,1200,99000000,-;random: crng reseeded due to virtual machine fork", 14, 1, 1200UL, 99000000UL, KmsgSource.ForkLine)]
    [InlineData("6,339,1454600,c,caller=T1;virtio_net virtio1 eth0: up", 6, 0, 339UL, 1454600UL, "virtio_net virtio1 eth0: up")]
    [InlineData("4,10,5,-;text; with; semicolons", 4, 0, 10UL, 5UL, "text; with; semicolons")]
    public void Parses_the_kmsg_record_format(string line, int prio, int facility, ulong seq, ulong time, string text)
    {
        Assert.True(KmsgRecord.TryParse(line, out KmsgRecord r));
        Assert.Equal(prio, r.Priority);
        Assert.Equal(facility, r.Facility);
        Assert.Equal(seq, r.Sequence);
        Assert.Equal(time, r.TimestampMicroseconds);
        Assert.Equal(text, r.Text);
    }

    [Theory]
    [InlineData(" SUBSYSTEM=acpi")]
    [InlineData("no semicolon here")]
    [InlineData("x,1,2,-;bad prio")]
    [InlineData("5,1;too few fields")]
    [InlineData("")]
    public void Rejects_what_is_not_a_record(string line) => Assert.False(KmsgRecord.TryParse(line, out _));

    [Fact]
    public void Missing_log_is_not_available()
    {
        using var tmp = new TempDir();
        using var source = new KmsgSource(tmp.File("kmsg"));
        Assert.Contains("No such file", source.Probe().Reason);
        Assert.Throws<InvalidOperationException>(() => source.Start(_ => { }));
    }

    [Fact]
    public void Only_new_kernel_fork_lines_fire()
    {
        using var tmp = new TempDir();
        string path = tmp.File("kmsg");
        File.WriteAllText(path,
            "6,0,0,-;Linux version 6.18.44\n" +
            "5,77,110091,-;random: crng init done\n" +
            "5,341,1454643,-;random: crng reseeded due to virtual machine fork\n" + // boot: history
            " SUBSYSTEM=acpi\n" +
            " DEVICE=+acpi:VMGENCTR:00\n");
        using var source = new KmsgSource(path, TimeSpan.FromMilliseconds(5));
        var events = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
        source.Start(events.Enqueue);
        Assert.Equal(1, source.HistoricalForkLines);
        Assert.Equal(3, source.HistoricalRecords);

        File.AppendAllText(path,
            "14,342,2000000,-;random: crng reseeded due to virtual machine fork\n" + // user facility: forged
            "5,343,2000001,-;random: crng init done\n" +                                 // other text
            "5,200,2000002,-;random: crng reseeded due to virtual machine fork\n" +     // seq not after history
            "5,344,2000003,-;random: crng reseeded due to virtual machine fork\n");     // the real thing
        Assert.True(Eventually.True(() => !events.IsEmpty));
        // records arrive in order, so everything before the real line has already been judged
        File.AppendAllText(path, "5,345,2000004,-;rcu: marker after\n5,346,2000005,-;random: crng reseeded due to virtual machine fork\n");
        Assert.True(Eventually.True(() => events.Count >= 2));
        source.Dispose();

        Assert.Equal(2, events.Count);
        Assert.Contains("seq 344", events.First().Detail);
        Assert.Equal(344UL, events.First().Sequence); // for the VM ID (VmForkId): the record's own number
        Assert.Null(events.First().Generation);
    }

    [Fact]
    public void Record_split_across_reads_is_reassembled()
    {
        using var tmp = new TempDir();
        string path = tmp.File("kmsg");
        File.WriteAllText(path, "");
        using var source = new KmsgSource(path, TimeSpan.FromMilliseconds(5));
        var events = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
        source.Start(events.Enqueue);
        File.AppendAllText(path, "5,1,100,-;random: crng reseeded due to vir");
        Thread.Sleep(50);
        File.AppendAllText(path, "tual machine fork\n");
        Assert.True(Eventually.True(() => events.Count == 1));
    }

    [Fact]
    public void Real_host_kmsg_finds_the_boot_fork_line_without_firing()
    {
        if (!LibC.IsRoot)
            Assert.Skip("needs root: reading /dev/kmsg (dmesg_restrict) — SKIPPED, real-host check not run");
        using var source = new KmsgSource();
        Assert.True(source.Probe().IsAvailable, source.Probe().ToString());
        int fired = 0;
        source.Start(_ => Interlocked.Increment(ref fired));

        bool bootLineInRing = RingHasForkLine();
        if (!bootLineInRing)
            Assert.Skip("this machine's ring buffer holds no VM-fork line (not restored from a snapshot, or it wrapped)");
        Assert.True(source.HistoricalForkLines >= 1);
        Thread.Sleep(300); // give a wrongly-firing watcher the chance to fire
        Assert.Equal(0, Volatile.Read(ref fired));
    }

    private static bool RingHasForkLine()
    {
        var psi = new ProcessStartInfo("dmesg") { RedirectStandardOutput = true, UseShellExecute = false };
        using Process? dmesg = Process.Start(psi);
        if (dmesg is null) return false;
        string output = dmesg.StandardOutput.ReadToEnd();
        dmesg.WaitForExit();
        return output.Contains(KmsgSource.ForkLine, StringComparison.Ordinal);
    }
}
