using ForkNotify;
using TestSupport;
using Xunit;

namespace ForkNotify.Tests;

public sealed class ForkSourceSelectionTests
{
    private const ulong GenFlags = VmClockAbi.FlagVmGenCounterPresent;
    private static readonly HostKernel WithVmGenId = new("6.18.44", HasVmGenIdDriver: true);
    private static readonly HostKernel WithoutVmGenId = new("6.18.44", HasVmGenIdDriver: false);

    internal static ForkSourcePaths Paths(TempDir tmp) => new()
    {
        VmClock = tmp.File("vmclock0"),
        SysGenId = tmp.File("sysgenid"),
        Kmsg = tmp.File("kmsg"),
        VmGenId = new VmGenIdPaths
        {
            Memory = tmp.File("mem"),
            AcpiTables = tmp.File("tables"),
            FwCfgAddress = tmp.File("vmgenid_addr"),
            DeviceTree = tmp.File("devicetree"),
        },
    };

    [Fact]
    public void Auto_prefers_vmclock_over_every_push_source_and_says_why_the_others_lost()
    {
        using var tmp = new TempDir();
        using var page = new VmClockPageFile(tmp.File("vmclock0"), GenFlags, 41);
        File.WriteAllText(tmp.File("kmsg"), "");

        var choice = ForkSourceSelection.Choose(null, Paths(tmp), WithVmGenId);
        using var source = choice.Source;

        Assert.Equal(ForkSourceKind.VmClock, choice.Kind);
        Assert.True(choice.Automatic);
        Assert.Null(choice.Failure);
        Assert.Same(choice.Source, choice.PullCounter);
        Assert.Equal(41UL, choice.PullCounter!.Read());
        Assert.Equal(ForkSourceSelection.AutoOrder, choice.Candidates.Select(c => c.Kind));
        Assert.Contains("No such file", choice.Candidates[2].Availability.Reason);          // sysgenid
        Assert.Contains("vmclock comes first", choice.Candidates[3].Availability.Reason);   // kmsg: usable
        string line = choice.Describe();
        Assert.Contains($"fork source (auto): vmclock ({tmp.File("vmclock0")}), a pull counter", line);
        Assert.Contains("sysgenid: not available", line);
        Assert.Contains("kmsg: not available: usable, but vmclock comes first", line);
    }

    [Fact]
    public void Auto_takes_kmsg_when_neither_counter_exists_and_the_vmgenid_driver_is_bound()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("kmsg"), "");

        var choice = ForkSourceSelection.Choose(null, Paths(tmp), WithVmGenId);
        using var source = choice.Source;

        Assert.Equal(ForkSourceKind.Kmsg, choice.Kind);
        Assert.IsType<KmsgSource>(choice.Source);
        Assert.Null(choice.PullCounter);
        Assert.Contains("push notifications only", choice.Describe());
        Assert.Contains("kernel 6.18.44 sends no NEW_VMGENID uevent", choice.Candidates[4].Availability.Reason);
    }

    [Fact]
    public void Auto_skips_kmsg_and_uevent_without_the_vmgenid_driver_and_ends_with_none()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("kmsg"), "");

        var choice = ForkSourceSelection.Choose(null, Paths(tmp), WithoutVmGenId);

        Assert.Equal(ForkSourceKind.None, choice.Kind);
        Assert.Null(choice.Source);
        Assert.Null(choice.Failure); // auto finding nothing is not an error
        Assert.Contains("never logs a VM fork", choice.Candidates[3].Availability.Reason);
        Assert.StartsWith("fork source (auto): none; vmgenid: not available", choice.Describe());
    }

    [Fact]
    public void Auto_takes_the_uevent_only_on_linux_6_8()
    {
        using var tmp = new TempDir(); // no vmclock, sysgenid or kmsg file
        var choice = ForkSourceSelection.Choose(null, Paths(tmp), new HostKernel("6.8.0-31-generic", true));
        using var source = choice.Source;
        ForkSourceCandidate uevent = choice.Candidates[4];
        if (!uevent.Availability.IsAvailable)
        {
            // A sandbox without netlink: the socket is the reason, never the kernel version.
            Assert.DoesNotContain("only 6.8", uevent.Availability.Reason);
            Assert.Skip($"SKIPPED: no netlink uevent socket here ({uevent.Availability.Reason}); the 6.8 choice was not checked");
        }
        Assert.Equal(ForkSourceKind.Uevent, choice.Kind);
        Assert.IsType<UeventSource>(choice.Source);
    }

    [Fact]
    public void A_requested_source_gets_no_extra_check_and_a_missing_one_is_a_failure()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("kmsg"), "");

        // The user asked for kmsg: taken even where auto would not (no vmgenid driver).
        var kmsg = ForkSourceSelection.Choose(ForkSourceKind.Kmsg, Paths(tmp), WithoutVmGenId);
        using (kmsg.Source)
        {
            Assert.Equal(ForkSourceKind.Kmsg, kmsg.Kind);
            Assert.False(kmsg.Automatic);
            Assert.Single(kmsg.Candidates);
            Assert.Equal($"fork source (requested): kmsg ({tmp.File("kmsg")}), push notifications only", kmsg.Describe());
        }

        var vmclock = ForkSourceSelection.Choose(ForkSourceKind.VmClock, Paths(tmp), WithVmGenId);
        Assert.Null(vmclock.Source);
        Assert.Equal(ForkSourceKind.VmClock, vmclock.Kind);
        Assert.Contains("No such file", vmclock.Failure);

        var none = ForkSourceSelection.Choose(ForkSourceKind.None, Paths(tmp), WithVmGenId);
        Assert.Null(none.Source);
        Assert.Null(none.Failure);
        Assert.Empty(none.Candidates);
    }

    [Fact]
    public void A_page_without_the_generation_flag_is_passed_over()
    {
        using var tmp = new TempDir();
        using (new VmClockPageFile(tmp.File("vmclock0"), VmClockAbi.FlagTimeMonotonic, 1)) { }
        File.WriteAllText(tmp.File("kmsg"), "");
        var choice = ForkSourceSelection.Choose(null, Paths(tmp), WithVmGenId);
        using var source = choice.Source;
        Assert.Equal(ForkSourceKind.Kmsg, choice.Kind);
        Assert.Contains("VM_GEN_COUNTER_PRESENT", choice.Candidates[1].Availability.Reason);
    }

    [Theory]
    [InlineData("6.8.0-31-generic", true)]
    [InlineData("6.8.9", true)]
    [InlineData("6.8", true)]
    [InlineData("6.18.44-fc-v669", false)]
    [InlineData("6.9.1", false)]
    [InlineData("5.10.0", false)]
    public void Only_6_8_sends_vmgenid_uevents(string release, bool sends) =>
        Assert.Equal(sends, new HostKernel(release, true).SendsVmGenIdUevents);

    [Fact]
    public void Kind_names_round_trip_and_only_vmclock_and_vmgenid_are_pull_counters()
    {
        foreach (ForkSourceKind kind in Enum.GetValues<ForkSourceKind>())
        {
            Assert.True(ForkSourceKinds.TryParse(ForkSourceKinds.Name(kind), out ForkSourceKind parsed));
            Assert.Equal(kind, parsed);
            Assert.Equal(kind is ForkSourceKind.VmClock or ForkSourceKind.VmGenId, ForkSourceKinds.HasPullCounter(kind));
        }
        Assert.False(ForkSourceKinds.TryParse("auto", out _));
        Assert.False(ForkSourceKinds.TryParse("VMCLOCK", out _));
    }
}
