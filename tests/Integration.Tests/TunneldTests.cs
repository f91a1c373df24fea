using System.Net.Sockets;
using System.Text;
using Xunit;

namespace Integration.Tests;

/// <summary>The tunneld executable: command line, config errors, privileges, and a full up/stop
/// cycle in a namespace (TUN, UAPI socket, sd_notify, SIGTERM teardown).</summary>
[Collection(RootCollection.Name)]
public sealed class TunneldTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteConfig(string name, string text)
    {
        var path = Path.Combine(_dir, name + ".conf");
        File.WriteAllText(path, text);
        return path;
    }

    private static string NewKey() => ProcessRunner.Check([TunneldBinary.Path, "genkey"]).Trim();

    [Fact]
    public void GenkeyPrintsAClampedBase64Key()
    {
        var key = Convert.FromBase64String(NewKey());
        Assert.Equal(32, key.Length);
        Assert.Equal(0, key[0] & 7);
        Assert.Equal(0x40, key[31] & 0xc0);
        Assert.NotEqual(NewKey(), NewKey());
    }

    [Fact]
    public void PubkeyAgreesWithWgPubkey()
    {
        RootCollection.RequireRootAnd("wg");
        for (var i = 0; i < 3; i++)
        {
            var key = NewKey();
            Assert.Equal(ProcessRunner.Check(["wg", "pubkey"], key + "\n"),
                ProcessRunner.Check([TunneldBinary.Path, "pubkey"], key + "\n"));
        }
        // wg pubkey clamps an unclamped key first; so must tunneld.
        var unclamped = Convert.ToBase64String(Enumerable.Repeat((byte)0xff, 32).ToArray());
        Assert.Equal(ProcessRunner.Check(["wg", "pubkey"], unclamped + "\n"),
            ProcessRunner.Check([TunneldBinary.Path, "pubkey"], unclamped + "\n"));
        var bad = ProcessRunner.Run([TunneldBinary.Path, "pubkey"], "not a key\n");
        Assert.Equal(1, bad.ExitCode);
        Assert.DoesNotContain("   at ", bad.Error);
    }

    [Fact]
    public void BadConfigExitsTwoNamingFileAndLineAndCreatesNothing()
    {
        var name = NetNs.UniqueInterfaceName("td");
        var path = WriteConfig(name, $"[Interface]\nPrivateKey = {NewKey()}\nListenPort = 99999\n");
        var result = ProcessRunner.Run([TunneldBinary.Path, "up", path]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{path}:3: ListenPort must be a number from 0 to 65535", result.Error);
        Assert.DoesNotContain("   at ", result.Error);
        Assert.False(File.Exists($"/var/run/wireguard/{name}.sock"));
        Assert.NotEqual(0, ProcessRunner.Run(["ip", "link", "show", "dev", name]).ExitCode);
    }

    [Theory]
    [InlineData(new string[0], 2)]
    [InlineData(new[] { "--help" }, 0)]
    [InlineData(new[] { "--frobnicate" }, 2)]
    [InlineData(new[] { "frob", "nicate" }, 2)]
    [InlineData(new[] { "up" }, 2)]
    public void CommandLine(string[] args, int exitCode)
    {
        var result = ProcessRunner.Run([TunneldBinary.Path, .. args]);
        Assert.Equal(exitCode, result.ExitCode);
        Assert.Contains("Usage: tunneld", result.Output + result.Error);
    }

    [Fact]
    public void WithoutPrivilegeItSaysSoWithoutAStackTrace()
    {
        RootCollection.RequireRootAnd("setpriv");
        var name = NetNs.UniqueInterfaceName("td");
        var path = WriteConfig(name, $"[Interface]\nPrivateKey = {NewKey()}\n");
        File.SetUnixFileMode(_dir, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);
        var result = ProcessRunner.Run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", TunneldBinary.Path, "up", path]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("run as root or with CAP_NET_ADMIN", result.Error);
        Assert.DoesNotContain("   at ", result.Error + result.Output);
    }

    [Fact]
    public void UpServesUapiNotifiesSystemdAndCleansUpOnSigterm()
    {
        RootCollection.RequireRootAnd("ip", "wg");
        using var ns = NetNs.Create("td");
        var name = NetNs.UniqueInterfaceName("td");
        var socketPath = $"/var/run/wireguard/{name}.sock";
        ns.RemoveOnDispose(socketPath);
        var peer = ProcessRunner.Check(["wg", "pubkey"], NewKey() + "\n").Trim();
        var path = WriteConfig(name, $"""
            [Interface]
            PrivateKey = {NewKey()}
            ListenPort = 51820
            Address = 10.60.0.1/24, fd60::1/64
            MTU = 1400

            [Peer]
            PublicKey = {peer}
            AllowedIPs = 10.61.0.0/24, fd61::/64
            Endpoint = 10.99.0.2:51821
            PersistentKeepalive = 25
            """);

        // A path socket (abstract ones belong to a network namespace; tunneld runs in another).
        var notifyPath = Path.Combine(_dir, "notify");
        using var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(notifyPath));
        notify.ReceiveTimeout = 30_000;

        var daemon = ns.StartWithEnvironment(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath },
            TunneldBinary.Path, "up", path);
        Assert.True(Receive(notify) == "READY=1", daemon.Output);

        Assert.Equal("srwx------", Mode(socketPath));
        var dump = ns.Check("wg", "show", name, "dump").Split('\n');
        Assert.Equal("51820", dump[0].Split('\t')[2]);
        var peerLine = dump[1].Split('\t');
        Assert.Equal(peer, peerLine[0]);
        Assert.Equal("10.99.0.2:51821", peerLine[2]);
        Assert.Equal("10.61.0.0/24,fd61::/64", peerLine[3]);
        Assert.Equal("25", peerLine[7]);

        var link = ns.Check("ip", "addr", "show", "dev", name);
        Assert.Contains("mtu 1400", link);
        Assert.Contains("10.60.0.1/24", link);
        Assert.Contains("fd60::1/64", link);
        Assert.Contains($"10.61.0.0/24 dev {name}", ns.Check("ip", "route"));
        Assert.Contains($"fd61::/64 dev {name}", ns.Check("ip", "-6", "route"));

        // Starting a second daemon for the same interface fails clearly and leaves the first alone.
        var second = ns.Run(TunneldBinary.Path, "up", path);
        Assert.Equal(1, second.ExitCode);
        Assert.DoesNotContain("   at ", second.Error);
        Assert.Equal(0, ns.Run("wg", "show", name).ExitCode);

        Assert.True(daemon.Terminate(TimeSpan.FromSeconds(20)), "tunneld ignored SIGTERM");
        Assert.True(daemon.ExitCode == 0, daemon.Output);
        Assert.Equal("STOPPING=1", Receive(notify));
        Assert.False(File.Exists(socketPath), "UAPI socket left behind");
        Assert.NotEqual(0, ns.Run("ip", "link", "show", "dev", name).ExitCode);
        Assert.DoesNotContain("PrivateKey", daemon.Output);
    }

    [Fact]
    public void ReadinessReachesAnAbstractNotifySocket()
    {
        RootCollection.RequireRootAnd("ip", "python3");
        using var ns = NetNs.Create("td");
        var name = NetNs.UniqueInterfaceName("td");
        ns.RemoveOnDispose($"/var/run/wireguard/{name}.sock");
        var path = WriteConfig(name, $"[Interface]\nPrivateKey = {NewKey()}\n");
        var abstractName = "tunneld-test-" + Guid.NewGuid().ToString("N")[..8];
        // Abstract sockets belong to a network namespace: listen inside the daemon's one.
        var listener = ns.Start("python3", "-c",
            "import socket,sys\n" +
            "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind('\\0'+sys.argv[1]); s.settimeout(30)\n" +
            "print('bound',flush=True)\n" +
            "for _ in range(2): print(s.recv(100).decode(),flush=True)\n",
            abstractName);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!listener.Output.Contains("bound") && DateTime.UtcNow < deadline)
            Thread.Sleep(20);
        var daemon = ns.StartWithEnvironment(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = "@" + abstractName },
            TunneldBinary.Path, "up", path);
        deadline = DateTime.UtcNow.AddSeconds(30);
        while (!listener.Output.Contains("READY=1") && DateTime.UtcNow < deadline && !daemon.HasExited)
            Thread.Sleep(20);
        Assert.True(listener.Output.Contains("READY=1"), daemon.Output + listener.Output);
        Assert.True(daemon.Terminate(TimeSpan.FromSeconds(20)));
        Assert.True(listener.WaitForExit(TimeSpan.FromSeconds(20)), listener.Output);
        Assert.Contains("STOPPING=1", listener.Output);
    }

    private static string Receive(Socket socket)
    {
        var buffer = new byte[256];
        var n = socket.Receive(buffer);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    private static string Mode(string path) =>
        ProcessRunner.Check(["stat", "-c", "%A", path]).Trim();
}
