using ForkNotify;
using TestSupport;
using Xunit;
using static Integration.Tests.TunnelEnds;

namespace Integration.Tests;

/// <summary>
/// tunneld's fork protection end to end (issue 6, "The daemon"): tunneld (side A, 10.99.0.1) and
/// wireguard-go (side B, 10.99.0.2) in two namespaces; the host source is a file in the real
/// format (a <c>struct vmclock_abi</c> page, a kmsg log) that the test changes as a hypervisor or
/// the kernel would; a capture on B's veth shows what tunneld sends.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class TunneldForkTests : IDisposable
{
    private const string A = "10.99.0.1:51820";
    private const string B = "10.99.0.2:51821";
    private const string ForkLine = "random: crng reseeded due to virtual machine fork";
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-fork-").FullName;
    private readonly KeyPair _a = KeyPair.Create();
    private readonly KeyPair _b = KeyPair.Create();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ITestOutputHelper? Output => TestContext.Current.TestOutputHelper;

    private string Config() => $"""
        [Interface]
        PrivateKey = {_a.Private}
        ListenPort = 51820
        Address = 10.200.0.1/24

        [Peer]
        PublicKey = {_b.Public}
        AllowedIPs = 10.200.0.2/32
        Endpoint = {B}
        """;

    private (string Name, BackgroundProcess Daemon) StartTunneldA(NetNs ns, params string[] options)
    {
        var name = NetNs.UniqueInterfaceName("tf");
        return (name, StartTunneld(ns, _dir, name, Config(), options));
    }

    private void StartWireguardGoB(NetNs ns)
    {
        var name = NetNs.UniqueInterfaceName("wg");
        StartWireguardGo(ns, name);
        ConfigureWg(ns, name, 51821, _b, _a.Public, "10.200.0.1/32", A, ["10.200.0.2/24"]);
    }

    private static (NetNs A, NetNs B) Namespaces() => NetNs.CreateLinkedPair("tfa", "tfb");

    /// <summary>Every index tunneld has put on the wire as its own (initiations and responses it sent).</summary>
    private static HashSet<uint> TunneldIndexes(WireCapture capture) =>
        capture.Messages().Where(m => m.From == A && m.Type is 1 or 2).Select(m => m.Sender).ToHashSet();

    /// <summary>Waits for tunneld's first initiation after <paramref name="since"/> under an index never used before.</summary>
    private static WireMessage NewInitiation(WireCapture capture, long since, HashSet<uint> old, BackgroundProcess daemon)
    {
        WireMessage? found = null;
        Eventually(() => (found = capture.Messages().FirstOrDefault(m =>
                m.Nanos > since && m.From == A && m.Type == 1 && !old.Contains(m.Sender))) is not null,
            TimeSpan.FromSeconds(10), () => $"tunneld sent no initiation under a new index:\n{daemon.Output}");
        return found!;
    }

    private static void AssertNoKeyIn(string output, params KeyPair[] keys)
    {
        foreach (var key in keys)
            Assert.DoesNotContain(key.Private, output);
    }

    [Fact]
    public void A_vmclock_generation_bump_clears_the_sessions_and_rekeys_under_a_new_index_within_a_second()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go", "python3");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        using var page = new VmClockPageFile(Path.Combine(_dir, "vmclock0"), VmClockAbi.FlagVmGenCounterPresent, 41);
        var capture = WireCapture.Start(b, "veth-b");
        // No --fork-source: auto finds the page (vmgenid, tried first, finds no ID on this host) and the default mode is both.
        var (tunneld, daemon) = StartTunneldA(a, "--vmclock-path", page.Path);
        StartWireguardGoB(b);
        Ping(a, "10.200.0.2", daemon: daemon);

        Assert.Contains($"fork source (auto): vmclock ({page.Path}), a pull counter; vmgenid: not available", daemon.Output);
        Assert.Contains("fork guard mode both (default with a pull counter)", daemon.Output);
        var keys = UapiDeviceKeys(tunneld);
        Assert.Equal("both", keys["fork_mode"]);
        Assert.Equal("vmclock", keys["fork_source"]);
        Assert.Equal("0", keys["fork_generation_handled"]);
        Assert.Equal("41", keys["fork_pull_counter"]);
        var old = TunneldIndexes(capture);
        Assert.NotEmpty(old);

        // Traffic keeps flowing across the fork, so the hot path may meet it before the notification.
        var pinger = a.Start("ping", "-i", "0.05", "-W", "1", "10.200.0.2");
        Thread.Sleep(300);
        var bumped = WireCapture.Now();
        page.PostRestore(); // seq odd, disruption_marker and vm_generation_counter + 1, seq even
        var initiation = NewInitiation(capture, bumped, old, daemon);
        var latencyMs = (initiation.Nanos - bumped) / 1e6;
        Output?.WriteLine($"generation bump -> new initiation (index {initiation.Sender:x8}) on the wire: {latencyMs:F1} ms");
        Assert.True(latencyMs < 1000, $"the new initiation left {latencyMs:F0} ms after the bump\n{daemon.Output}");

        keys = UapiDeviceKeys(tunneld);
        Output?.WriteLine(string.Join(' ', keys.Where(k => k.Key.StartsWith("fork_")).Select(k => $"{k.Key}={k.Value}")));
        Assert.Equal("1", keys["fork_generation"]);
        Assert.Equal("1", keys["fork_generation_handled"]);
        Assert.Equal("0", keys["fork_outdated_watchers"]);
        Assert.Equal("1", keys["fork_events"]);
        Assert.Equal("1", keys["fork_sessions_cleared"]);
        Assert.Equal("42", keys["fork_pull_counter"]);

        // Ping goes on, both ways, and wireguard-go now addresses tunneld by the new index.
        Assert.True(pinger.Terminate(TimeSpan.FromSeconds(10)));
        Ping(a, "10.200.0.2", daemon: daemon);
        Ping(b, "10.200.0.1", daemon: daemon);
        WireMessage? first = null;
        Eventually(() => (first = capture.Messages().FirstOrDefault(m => m.From == B && m.Type == 4 && m.Receiver == initiation.Sender)) is not null,
            TimeSpan.FromSeconds(10), () => "wireguard-go never used tunneld's new index");
        // Once it has, the old session is never used again (tunneld's keys for it are gone anyway).
        Assert.DoesNotContain(capture.Messages(), m => m.Nanos > first!.Nanos && m.From == B && m.Type == 4 && old.Contains(m.Receiver));

        // The extra keys are invisible to wg: it shows the interface as it shows any other.
        var conf = a.Check("wg", "showconf", tunneld);
        Assert.Equal($"[Interface]\nListenPort = 51820\nPrivateKey = {_a.Private}\n\n[Peer]\nPublicKey = {_b.Public}\n" +
            $"AllowedIPs = 10.200.0.2/32\nEndpoint = {B}\n", conf);
        var dump = PeerDump(a, tunneld);
        Assert.Equal(_b.Public, dump[0]);
        Assert.NotEqual("0", dump[4]);
        Assert.Contains("latest handshake:", a.Check("wg", "show", tunneld));
        AssertNoKeyIn(daemon.Output, _a, _b);
    }

    [Fact]
    public void A_kmsg_fork_line_clears_the_sessions_and_rekeys_and_history_and_forgeries_do_not()
    {
        RootCollection.RequireRootAnd("ip", "ping", "wg", "wireguard-go", "python3");
        var (a, b) = Namespaces();
        using var _ = a;
        using var __ = b;
        var log = Path.Combine(_dir, "kmsg");
        // What a machine restored from a snapshot has in its log from boot: history, never a fork now.
        File.WriteAllText(log, $"6,0,0,-;Linux version 6.18.44\n5,341,1454643,-;{ForkLine}\n SUBSYSTEM=acpi\n");
        var capture = WireCapture.Start(b, "veth-b");
        var (tunneld, daemon) = StartTunneldA(a, "--fork-source", "kmsg", "--kmsg-path", log);
        StartWireguardGoB(b);
        Ping(a, "10.200.0.2", daemon: daemon);

        Assert.Contains($"fork source (requested): kmsg ({log}), push notifications only", daemon.Output);
        var keys = UapiDeviceKeys(tunneld);
        Assert.Equal("notifier", keys["fork_mode"]); // the default without a pull counter
        Assert.Equal("kmsg", keys["fork_source"]);
        Assert.Equal("0", keys["fork_events"]);
        Assert.False(keys.ContainsKey("fork_pull_counter"));
        var old = TunneldIndexes(capture);
        Assert.NotEmpty(old);

        var appended = WireCapture.Now();
        File.AppendAllText(log, $"14,342,2000000,-;{ForkLine}\n" + // user facility: anyone can write that
            $"5,343,2000001,-;{ForkLine}\n");
        var initiation = NewInitiation(capture, appended, old, daemon);
        Output?.WriteLine($"kmsg line -> new initiation on the wire: {(initiation.Nanos - appended) / 1e6:F1} ms");
        keys = UapiDeviceKeys(tunneld);
        Assert.Equal("1", keys["fork_events"]);
        Assert.Equal("1", keys["fork_generation_handled"]);
        Assert.Equal("1", keys["fork_sessions_cleared"]);
        Ping(a, "10.200.0.2", daemon: daemon);
        Ping(b, "10.200.0.1", daemon: daemon);

        // Every fork line is a fork: the kmsg ID carries a nonce, so the kernel never takes it for a repeat.
        old = TunneldIndexes(capture);
        appended = WireCapture.Now();
        File.AppendAllText(log, $"5,344,3000000,-;{ForkLine}\n");
        NewInitiation(capture, appended, old, daemon);
        Eventually(() => UapiDeviceKeys(tunneld)["fork_generation_handled"] == "2", TimeSpan.FromSeconds(10),
            () => daemon.Output);
        Ping(a, "10.200.0.2", daemon: daemon);
        AssertNoKeyIn(daemon.Output, _a, _b);
    }

    [Theory]
    [InlineData(2, "--fork-mode: 'sideways' is not one of off|notifier|hotpath|both", "--fork-mode", "sideways")]
    [InlineData(2, "--fork-source: 'floppy' is not one of auto|none|vmclock|sysgenid|kmsg|uevent|vmgenid", "--fork-source", "floppy")]
    [InlineData(2, "--fork-mode both needs a pull counter", "--fork-mode", "both", "--fork-source", "kmsg")]
    [InlineData(2, "--fork-mode hotpath needs a pull counter", "--fork-mode=hotpath", "--fork-source=none")]
    [InlineData(2, "--fork-mode needs a value", "--fork-mode")]
    [InlineData(2, "--fork-mode given twice", "--fork-mode", "both", "--fork-mode", "off")]
    [InlineData(2, "--fork-mode off watches no fork source", "--fork-mode", "off", "--fork-source", "kmsg")]
    [InlineData(2, "--kmsg-path is for --fork-source kmsg", "--fork-source", "vmclock", "--kmsg-path", "/dev/null")]
    [InlineData(2, "unknown option '--fork-modes'", "--fork-modes", "both")]
    [InlineData(1, "--fork-source vmclock: vmclock (/nonexistent/vmclock0): not available", "--fork-source", "vmclock", "--vmclock-path", "/nonexistent/vmclock0")]
    // vmgenid is a pull counter, so hotpath with it passes the command line; no host here lets it map the ID.
    [InlineData(1, "--fork-source vmgenid: vmgenid (/dev/mem): not available: ", "--fork-mode", "hotpath", "--fork-source", "vmgenid")]
    // auto finds no pull counter (no page there, and no real /dev/vmclock0 on these machines): both cannot be had.
    [InlineData(2, "--fork-mode both needs a pull counter (vmgenid or vmclock) and this host has none: fork source (auto)", "--fork-mode", "both", "--vmclock-path", "/nonexistent/vmclock0")]
    public void Bad_fork_options_fail_clearly_and_create_nothing(int exitCode, string message, params string[] options)
    {
        var name = NetNs.UniqueInterfaceName("tf");
        var path = Path.Combine(_dir, name + ".conf");
        File.WriteAllText(path, Config());
        var result = ProcessRunner.Run([TunneldBinary.Path, "up", path, .. options]);
        Assert.True(result.ExitCode == exitCode, result.ToString());
        Assert.Contains(message, result.Error);
        Assert.DoesNotContain("   at ", result.Error + result.Output);
        Assert.False(File.Exists(SocketPath(name)));
        Assert.NotEqual(0, ProcessRunner.Run(["ip", "link", "show", "dev", name]).ExitCode);
    }
}
