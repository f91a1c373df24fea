using ForkNotify;
using TestSupport;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Transport;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>
/// The daemon's fork wiring without TUN or sockets: a real host source (a VMClock page file, a
/// kmsg-format file) feeds the guest kernel, whose generator device A draws from, and the guard
/// clears and rekeys A. Events run on the source's thread; the test looks only after
/// <see cref="ForkProtection.Forks"/> says the fork path has returned.
/// </summary>
public sealed class ForkProtectionTests : IDisposable
{
    private const ulong GenFlags = VmClockAbi.FlagVmGenCounterPresent;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(5);
    private readonly string _dir = Directory.CreateTempSubdirectory("fork-protection-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name) => Path.Combine(_dir, name);

    private static Dictionary<string, string> Keys(ForkProtection protection)
    {
        var keys = new List<KeyValuePair<string, string>>();
        protection.AddExtraKeys(keys);
        Assert.All(keys, k => Assert.True(UapiGetWriter.IsValidExtraKey(k.Key, k.Value), k.Key));
        return keys.ToDictionary();
    }

    private static void WaitFor(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15); // a liveness bound, not a speed check
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, what);
            Thread.Sleep(5);
        }
    }

    [Fact]
    public void A_vmclock_generation_bump_clears_the_session_and_a_new_one_starts_under_a_new_index()
    {
        using var page = new VmClockPageFile(File("vmclock0"), GenFlags, 41);
        var source = new VmClockSource(page.Path, Poll);
        Assert.True(source.Probe().IsAvailable);
        var kernel = new ForkKernel();
        using var protection = new ForkProtection(kernel, ForkGuardMode.Both, ForkSourceKind.VmClock, source, source,
            cloneInput: HwRng());
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        Assert.Same(source, pair.A.Fork.Counter);

        var keys = Keys(protection);
        Assert.Equal("both", keys["fork_mode"]);
        Assert.Equal("vmclock", keys["fork_source"]);
        Assert.Equal("0", keys["fork_generation_handled"]);
        Assert.Equal("41", keys["fork_pull_counter"]);

        pair.Handshake();
        Keypair before = Assert.IsType<Keypair>(pair.PeerB.Keypairs.Current);
        uint oldIndex = before.LocalIndex;

        // A second later (past the 20 ms every responder keeps between initiations from one peer,
        // which the guard respects), the hypervisor restores the VM: seq odd, generation 42, seq even.
        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        page.PostRestore();
        WaitFor(() => protection.Forks == 1, "the vmclock bump never reached the fork path");

        Assert.Null(pair.PeerB.Keypairs.Current);
        Assert.True(before.SendKey.IndexOfAnyExcept((byte)0) < 0, "the old send key was not zeroed");
        pair.A.Tick(); // the host timer thread: the rekey is paced from Tick
        Datagram initiation = Assert.Single(pair.IoA.Sent);
        Assert.Equal(MessageType.Initiation, initiation.Type); // at once, not at the next packet
        keys = Keys(protection);
        Assert.Equal("1", keys["fork_generation"]);
        Assert.Equal("1", keys["fork_generation_handled"]);
        Assert.Equal("0", keys["fork_outdated_watchers"]);
        Assert.Equal("1", keys["fork_events"]);
        Assert.Equal("1", keys["fork_sessions_cleared"]);
        Assert.Equal("42", keys["fork_pull_counter"]);

        pair.Pump();
        Keypair after = Assert.IsType<Keypair>(pair.PeerB.Keypairs.Current);
        Assert.NotEqual(oldIndex, after.LocalIndex);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 7, 100));
        pair.Pump();
        Assert.Equal(7u, DevicePair.ReadIntact(Assert.Single(pair.IoB.Delivered)));
        Assert.Equal("0", Keys(protection)["fork_stale_key_drops"]);
    }

    [Fact]
    public void Every_kmsg_fork_line_is_a_new_fork_and_history_is_not()
    {
        string log = File("kmsg");
        System.IO.File.WriteAllText(log, "5,341,1454643,-;random: crng reseeded due to virtual machine fork\n");
        var source = new KmsgSource(log, Poll);
        var kernel = new ForkKernel();
        using var protection = new ForkProtection(kernel, ForkGuardMode.Notifier, ForkSourceKind.Kmsg, source);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        pair.Handshake();
        Assert.Equal(0, protection.Events);
        Assert.DoesNotContain("fork_pull_counter", Keys(protection).Keys);

        pair.Clock.Advance(TimeSpan.FromSeconds(1)); // past the responder's initiation flood limit
        System.IO.File.AppendAllText(log, "5,400,2000000,-;random: crng reseeded due to virtual machine fork\n");
        WaitFor(() => protection.Forks == 1, "the kmsg line never reached the fork path");
        pair.A.Tick(); // the host timer thread: the rekey is paced from Tick
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.TakeSent()).Type);

        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        System.IO.File.AppendAllText(log, "5,401,2000001,-;random: crng reseeded due to virtual machine fork\n");
        WaitFor(() => protection.Forks == 2, "the second kmsg line never reached the fork path");
        var keys = Keys(protection);
        Assert.Equal("notifier", keys["fork_mode"]);
        Assert.Equal("kmsg", keys["fork_source"]);
        Assert.Equal("2", keys["fork_generation_handled"]);
        Assert.Equal("2", keys["fork_sessions_cleared"]);
    }

    [Fact]
    public void The_vmclock_generation_at_start_is_not_a_fork()
    {
        using var page = new VmClockPageFile(File("vmclock0"), GenFlags, 9);
        var source = new VmClockSource(page.Path, Poll);
        Assert.True(source.Probe().IsAvailable);
        var kernel = new ForkKernel();
        using var protection = new ForkProtection(kernel, ForkGuardMode.HotPath, ForkSourceKind.VmClock, source, source);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        // The kernel knows generation 9 as its boot ID: a report of it is a repeat.
        Assert.False(kernel.AddVmForkRandomness(VmForkId.ForGeneration(source.Name, 9)));
        Assert.True(kernel.AddVmForkRandomness(VmForkId.ForGeneration(source.Name, 10)));
    }

    [Fact]
    public void Off_reports_itself_and_touches_nothing()
    {
        var kernel = new ForkKernel();
        using var protection = new ForkProtection(kernel, ForkGuardMode.Off, ForkSourceKind.VmClock, null);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        Assert.Null(pair.A.Fork.Counter);
        Assert.Empty(kernel.Pm.Chain.Blocks);
        var keys = Keys(protection);
        Assert.Equal("off", keys["fork_mode"]);
        Assert.Equal("none", keys["fork_source"]); // no source object: none, whatever the kind said
        Assert.Equal("0", keys["fork_generation_handled"]);
    }

    [Fact]
    public void Bad_compositions_are_refused()
    {
        var kernel = new ForkKernel();
        using var page = new VmClockPageFile(File("vmclock0"), GenFlags, 1);
        using var source = new VmClockSource(page.Path);
        Assert.Throws<ArgumentException>(() => new ForkProtection(kernel, ForkGuardMode.Both, ForkSourceKind.Kmsg, null));
        Assert.Throws<ArgumentException>(() => new ForkProtection(kernel, ForkGuardMode.HotPath, ForkSourceKind.None, null));
        Assert.Throws<ArgumentException>(() => new ForkProtection(kernel, ForkGuardMode.Off, ForkSourceKind.VmClock, source));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ForkProtection(kernel, (ForkGuardMode)9, ForkSourceKind.None, null));

        using var protection = new ForkProtection(kernel, ForkGuardMode.Notifier, ForkSourceKind.None, null);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        Assert.Throws<InvalidOperationException>(() => protection.Attach(pair.A));
    }

    [Fact]
    public void Dispose_stops_the_source_and_detaches_the_guard()
    {
        using var page = new VmClockPageFile(File("vmclock0"), GenFlags, 1);
        var source = new VmClockSource(page.Path, Poll);
        Assert.True(source.Probe().IsAvailable);
        var kernel = new ForkKernel();
        var protection = new ForkProtection(kernel, ForkGuardMode.Both, ForkSourceKind.VmClock, source, source);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);

        protection.Dispose();
        page.PostRestore();
        Thread.Sleep(100); // many poll intervals: a running watcher would have reported it

        Assert.Equal(0, protection.Events);
        Assert.Null(pair.A.Fork.Counter);
        Assert.Empty(kernel.Pm.Chain.Blocks);
        Assert.Equal(VmClockSource.Unreadable, source.Read()); // the page is unmapped
    }

    /// <summary>A stand-in /dev/hwrng: a file of random bytes, longer than one read.</summary>
    private HwRngInput HwRng()
    {
        string path = File("hwrng");
        System.IO.File.WriteAllBytes(path, System.Security.Cryptography.RandomNumberGenerator.GetBytes(HwRngInput.ReadLength * 2));
        return new HwRngInput(path);
    }

    [Fact]
    public void A_vmclock_fork_without_a_clone_unique_input_holds_handshakes_until_one_arrives()
    {
        // Issue 14 point 1: a VMClock counter is the same in every sibling clone, and so is
        // getrandom until the guest kernel reseeds. Without /dev/hwrng, nothing makes the reseed
        // unique, so the guard clears but sends no initiation, and says so.
        using var page = new VmClockPageFile(File("vmclock0"), GenFlags, 41);
        var source = new VmClockSource(page.Path, Poll);
        Assert.True(source.Probe().IsAvailable);
        var kernel = new ForkKernel();
        using var protection = new ForkProtection(kernel, ForkGuardMode.Both, ForkSourceKind.VmClock, source, source);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        pair.Handshake();
        Assert.Equal("none", Keys(protection)["fork_clone_input"]);
        Assert.Equal("0", Keys(protection)["fork_handshakes_held"]);

        pair.Clock.Advance(TimeSpan.FromSeconds(1));
        page.PostRestore();
        WaitFor(() => protection.Forks == 1, "the vmclock bump never reached the fork path");

        Assert.Null(pair.PeerB.Keypairs.Current); // cleared all the same
        Assert.Empty(pair.IoA.Sent);
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 80));
        Assert.Empty(pair.IoA.Sent);
        Assert.Equal("1", Keys(protection)["fork_handshakes_held"]);

        // The kernel's own reseed evidence (its kmsg line) arrives: getrandom is fresh, they go.
        kernel.AddCloneUniqueRandomness("random: crng reseeded due to virtual machine fork"u8, "kmsg");
        pair.A.Tick(); // the host timer thread: the rekey is paced from Tick
        Assert.Equal(MessageType.Initiation, Assert.Single(pair.IoA.Sent).Type);
        Assert.Equal("0", Keys(protection)["fork_handshakes_held"]);
    }

    [Fact]
    public void The_uapi_reply_carries_the_keys_after_fwmark_and_before_the_first_peer()
    {
        var kernel = new ForkKernel();
        using var protection = new ForkProtection(kernel, ForkGuardMode.Notifier, ForkSourceKind.None, null);
        using var pair = new DevicePair(randomA: protection.Random);
        protection.Attach(pair.A);
        pair.A.ListenPort = 51820;
        var state = new DeviceUapi(pair.A, null, protection).GetState();
        using var reply = new UapiReplyBuffer();
        UapiGetWriter.Write(state, reply);
        string text = reply.ToString();
        int port = text.IndexOf("listen_port=51820\n", StringComparison.Ordinal);
        int mode = text.IndexOf("fork_mode=notifier\n", StringComparison.Ordinal);
        int peer = text.IndexOf("public_key=", StringComparison.Ordinal);
        Assert.True(port >= 0 && mode > port && peer > mode, text);
        Assert.Contains("fork_source=none\nfork_generation=0\nfork_generation_handled=0\nfork_outdated_watchers=0\n" +
            "fork_events=0\nfork_sessions_cleared=0\nfork_stale_key_drops=0\nfork_clone_input=none\n" +
            "fork_handshakes_held=0\npublic_key=", text);
    }
}
