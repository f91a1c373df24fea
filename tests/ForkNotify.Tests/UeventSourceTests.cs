using System.Text;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed unsafe class UeventSourceTests
{
    // What Linux 6.8's vmgenid driver broadcast (ACPI-driver form: the ACPI device's kobject).
    private static readonly byte[] VmGenIdChange = UeventMessage.Format("change", "/devices/LNXSYSTM:00/LNXSYBUS:00/VMGENCTR:00",
        "ACTION=change", "DEVPATH=/devices/LNXSYSTM:00/LNXSYBUS:00/VMGENCTR:00", "SUBSYSTEM=acpi", "NEW_VMGENID=1",
        "MODALIAS=acpi:VMGENCTR:", "SEQNUM=4242");

    private static readonly byte[] PlainChange = UeventMessage.Format("change", "/devices/platform/VMGENCTR:00",
        "ACTION=change", "DEVPATH=/devices/platform/VMGENCTR:00", "SUBSYSTEM=platform", "SEQNUM=4243");

    [Fact]
    public void Parses_kernel_format_and_recognises_the_vmgenid_change()
    {
        Assert.True(UeventMessage.TryParse(VmGenIdChange, out UeventMessage? m));
        Assert.Equal("change", m!.Action);
        Assert.Equal("/devices/LNXSYSTM:00/LNXSYBUS:00/VMGENCTR:00", m.DevPath);
        Assert.Equal("acpi", m.Variables["SUBSYSTEM"]);
        Assert.Equal("4242", m.Variables["SEQNUM"]);
        Assert.True(m.IsVmGenIdChange);

        Assert.True(UeventMessage.TryParse(PlainChange, out UeventMessage? plain));
        Assert.False(plain!.IsVmGenIdChange);
    }

    [Fact]
    public void Other_actions_and_udev_rebroadcasts_are_not_forks()
    {
        byte[] add = UeventMessage.Format("add", "/devices/x", "ACTION=add", "NEW_VMGENID=1");
        Assert.True(UeventMessage.TryParse(add, out UeventMessage? m));
        Assert.False(m!.IsVmGenIdChange);

        // udev's group-2 format: "libudev\0" + binary header (magic 0xfeedcafe) + properties
        byte[] libudev = [.. Encoding.ASCII.GetBytes("libudev\0"), 0xca, 0xfe, 0xed, 0xfe, .. new byte[32], .. VmGenIdChange];
        Assert.False(UeventMessage.TryParse(libudev, out _));
        Assert.False(UeventMessage.TryParse([], out _));
        Assert.False(UeventMessage.TryParse("@\0"u8, out _));
        Assert.False(UeventMessage.TryParse("change@\0"u8, out _));
    }

    [Fact]
    public void Injected_uevent_in_a_private_network_namespace()
    {
        if (!LibC.IsRoot)
            Assert.Skip("needs root: creating a network namespace and multicasting on NETLINK_KOBJECT_UEVENT — SKIPPED");

        using var ns = new NetlinkNamespace();
        using var trusting = new UeventSource(allowedSenderPortId: ns.SenderPortId);
        using var strict = new UeventSource();
        ns.RunInside(() =>
        {
            Assert.True(trusting.Probe().IsAvailable);
            Assert.True(strict.Probe().IsAvailable);
        });
        var trustingEvents = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
        var strictEvents = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
        trusting.Start(trustingEvents.Enqueue);
        strict.Start(strictEvents.Enqueue);

        ns.Multicast(PlainChange);
        ns.Multicast(VmGenIdChange);

        Assert.True(Eventually.True(() => trustingEvents.Count == 1));
        Assert.True(Eventually.True(() => strict.RejectedSenders == 2));
        Assert.True(trusting.IgnoredEvents >= 1); // the change without NEW_VMGENID (plus any real kernel event)
        Assert.Empty(strictEvents);               // a root process is not the kernel
        Assert.Contains("NEW_VMGENID=1", trustingEvents.Single().Detail);
    }

    [Fact]
    public void Real_kernel_uevent_passes_the_sender_check_but_is_not_a_fork()
    {
        if (!LibC.IsRoot)
            Assert.Skip("needs root: writing a sysfs uevent file — SKIPPED");
        const string trigger = "/sys/devices/platform/VMGENCTR:00/uevent";
        if (!File.Exists(trigger))
            Assert.Skip("no vmgenid platform device on this machine");

        using var source = new UeventSource();
        Assert.True(source.Probe().IsAvailable);
        var events = new System.Collections.Concurrent.ConcurrentQueue<ForkEvent>();
        source.Start(events.Enqueue);
        int before = source.IgnoredEvents;
        File.WriteAllText(trigger, "change"); // the kernel emits a real "change" uevent, port id 0

        Assert.True(Eventually.True(() => source.IgnoredEvents > before));
        Assert.Equal(0, source.RejectedSenders);
        Assert.Empty(events); // current kernels send no NEW_VMGENID
    }

    [Fact]
    public void Probe_never_throws_and_dispose_is_idempotent()
    {
        var source = new UeventSource();
        ForkSourceAvailability a = source.Probe();
        Assert.True(a.IsAvailable || a.Reason is not null);
        source.Dispose();
        source.Dispose();
    }
}

/// <summary>
/// A fresh network namespace (unshared on a dedicated thread, so the test process stays where it
/// is) with a netlink uevent sender socket in it. Sockets keep their namespace after the thread
/// leaves it; the namespace disappears with the last socket, so nothing is left behind.
/// </summary>
internal sealed unsafe class NetlinkNamespace : IDisposable
{
    private readonly int _sender;
    private readonly int _nsFd;

    public NetlinkNamespace()
    {
        int sender = -1, nsFd = -1;
        uint port = 0;
        Exception? failure = RunOnThread(() =>
        {
            if (LibC.Unshare(LibC.CLONE_NEWNET) != 0)
                throw new InvalidOperationException($"unshare(CLONE_NEWNET): {LibC.Describe(LibC.LastError)}");
            // a handle on the namespace, so later threads can join it (this one exits)
            nsFd = LibC.Open("/proc/thread-self/ns/net", LibC.O_RDONLY | LibC.O_CLOEXEC);
            if (nsFd < 0)
                throw new InvalidOperationException($"open ns: {LibC.Describe(LibC.LastError)}");
            sender = LibC.Socket(LibC.AF_NETLINK, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, LibC.NETLINK_KOBJECT_UEVENT);
            if (sender < 0)
                throw new InvalidOperationException($"socket: {LibC.Describe(LibC.LastError)}");
            var local = new LibC.SockAddrNetlink { Family = LibC.AF_NETLINK };
            if (LibC.Bind(sender, &local, (uint)sizeof(LibC.SockAddrNetlink)) != 0)
                throw new InvalidOperationException($"bind: {LibC.Describe(LibC.LastError)}");
            uint length = (uint)sizeof(LibC.SockAddrNetlink);
            if (LibC.GetSockName(sender, &local, &length) != 0)
                throw new InvalidOperationException($"getsockname: {LibC.Describe(LibC.LastError)}");
            port = local.PortId;
        });
        if (failure is not null)
        {
            if (sender >= 0) LibC.Close(sender);
            if (nsFd >= 0) LibC.Close(nsFd);
            throw failure;
        }
        _sender = sender;
        _nsFd = nsFd;
        SenderPortId = port;
    }

    public uint SenderPortId { get; }

    /// <summary>Runs <paramref name="action"/> on a thread that has joined this namespace.</summary>
    public void RunInside(Action action)
    {
        Exception? failure = RunOnThread(() =>
        {
            if (LibC.SetNs(_nsFd, LibC.CLONE_NEWNET) != 0)
                throw new InvalidOperationException($"setns: {LibC.Describe(LibC.LastError)}");
            action();
        });
        if (failure is not null)
            throw failure;
    }

    /// <summary>Sends <paramref name="message"/> to multicast group 1, as the kernel would.</summary>
    public void Multicast(byte[] message)
    {
        var group = new LibC.SockAddrNetlink { Family = LibC.AF_NETLINK, PortId = 0, Groups = UeventSource.KernelGroup };
        fixed (byte* data = message)
        {
            nint n = LibC.SendTo(_sender, data, (nuint)message.Length, 0, &group, (uint)sizeof(LibC.SockAddrNetlink));
            if (n != message.Length)
                throw new InvalidOperationException($"sendto: {LibC.Describe(LibC.LastError)}");
        }
    }

    public void Dispose()
    {
        LibC.Close(_sender);
        LibC.Close(_nsFd);
    }

    // A dedicated OS thread: only it changes namespace, and it exits afterwards, so no pool thread
    // is ever left inside the test's namespace.
    private static Exception? RunOnThread(Action action)
    {
        Exception? caught = null;
        var thread = new Thread(() =>
        {
            try { action(); } catch (Exception ex) { caught = ex; }
        });
        thread.Start();
        thread.Join();
        return caught;
    }
}
