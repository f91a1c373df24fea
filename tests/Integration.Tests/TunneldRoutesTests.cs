using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Xunit;

namespace Integration.Tests;

/// <summary>
/// The routes <c>tunneld up</c> installs for the file's allowed IPs (rtnetlink, in batches): all of
/// them for 20,000 peers, none left after stop; an allowed IP the address's own prefix route
/// already covers is not added again (as wg-quick); a route the kernel refuses fails the start.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class TunneldRoutesTests : IDisposable
{
    private const int Peers = 20_000;
    /// <summary>Every tenth peer also gets an IPv6 /128.</summary>
    private const int Ipv6Every = 10;

    private readonly string _dir = Directory.CreateTempSubdirectory("tunneld-routes-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void TwentyThousandPeersGetEveryRouteAndLoseThemAllAtStop()
    {
        RootCollection.RequireRootAnd("ip");
        using var ns = NetNs.Create("rt");
        var name = NetNs.UniqueInterfaceName("rt");
        ns.RemoveOnDispose($"/var/run/wireguard/{name}.sock");
        var v4 = Enumerable.Range(0, Peers).Select(i => $"10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}").ToList();
        var v6 = Enumerable.Range(0, Peers).Where(i => i % Ipv6Every == 0).Select(i => IPAddress.Parse($"fd64::{i:x}").ToString()).ToList();
        var config = new StringBuilder($"[Interface]\nPrivateKey = {KeyPair.Create().Private}\nAddress = 10.255.0.1/24\n");
        for (var i = 0; i < Peers; i++)
        {
            config.Append($"\n[Peer]\nPublicKey = {RandomPublicKey()}\nAllowedIPs = {v4[i]}/32");
            if (i % Ipv6Every == 0)
                config.Append($", fd64::{i:x}/128");
            config.Append('\n');
        }
        var path = WriteConfig(name, config.ToString());

        using var notify = NotifySocket(out var notifyPath);
        var daemon = ns.StartWithEnvironment(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath },
            TunneldBinary.Path, "up", path);
        var ready = WaitReady(notify, daemon);
        Assert.True(ready == "READY=1", $"{ready}\n{daemon.Output}");

        var routes4 = Destinations(ns, "-4", "dev", name);
        var routes6 = Destinations(ns, "-6", "dev", name);
        Assert.Empty(v4.Where(a => !routes4.Contains(a)));
        Assert.Empty(v6.Where(a => !routes6.Contains(a)));
        Assert.Contains("10.255.0.0/24", routes4); // the address's own route, beside them

        Assert.True(daemon.Terminate(TimeSpan.FromSeconds(60)), "tunneld ignored SIGTERM");
        Assert.True(daemon.ExitCode == 0, daemon.Output);
        Assert.NotEqual(0, ns.Run("ip", "link", "show", "dev", name).ExitCode);
        var left4 = Destinations(ns, "-4", "table", "all");
        var left6 = Destinations(ns, "-6", "table", "all");
        Assert.Empty(v4.Where(left4.Contains));
        Assert.Empty(v6.Where(left6.Contains));
    }

    [Fact]
    public void AnAllowedIpTheAddressAlreadyRoutesIsNotAddedAgain()
    {
        RootCollection.RequireRootAnd("ip");
        using var ns = NetNs.Create("rt");
        var name = NetNs.UniqueInterfaceName("rt");
        ns.RemoveOnDispose($"/var/run/wireguard/{name}.sock");
        // 10.62.0.0/24 is the address's own prefix route: adding it again would be EEXIST.
        var path = WriteConfig(name, $"""
            [Interface]
            PrivateKey = {KeyPair.Create().Private}
            Address = 10.62.0.1/24, fd62::1/64

            [Peer]
            PublicKey = {RandomPublicKey()}
            AllowedIPs = 10.62.0.0/24, 10.62.0.7/32, 10.63.0.0/24, fd62::7/128, fd63::/64
            """);
        using var notify = NotifySocket(out var notifyPath);
        var daemon = ns.StartWithEnvironment(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notifyPath },
            TunneldBinary.Path, "up", path);
        var ready = WaitReady(notify, daemon);
        Assert.True(ready == "READY=1", $"{ready}\n{daemon.Output}");

        var routes = ns.Check("ip", "-4", "route", "show", "dev", name);
        Assert.Contains("10.63.0.0/24 scope link", routes); // proto boot, as ip route add: ip leaves it out
        Assert.Contains("10.62.0.0/24 proto kernel scope link src 10.62.0.1", routes);
        Assert.DoesNotContain("10.62.0.7", routes);
        var routes6 = ns.Check("ip", "-6", "route", "show", "dev", name);
        Assert.Contains("fd63::/64 metric 1024", routes6);
        Assert.DoesNotContain("fd62::7", routes6);
        Assert.True(daemon.Terminate(TimeSpan.FromSeconds(20)), "tunneld ignored SIGTERM");
        Assert.True(daemon.ExitCode == 0, daemon.Output);
    }

    [Fact]
    public void ARouteTheKernelRefusesFailsTheStartAndNamesIt()
    {
        RootCollection.RequireRootAnd("ip");
        using var ns = NetNs.Create("rt");
        var name = NetNs.UniqueInterfaceName("rt");
        ns.RemoveOnDispose($"/var/run/wireguard/{name}.sock");
        ns.Check("ip", "route", "add", "10.66.0.0/24", "dev", "lo"); // taken: same table, prefix and metric
        var path = WriteConfig(name, $"""
            [Interface]
            PrivateKey = {KeyPair.Create().Private}

            [Peer]
            PublicKey = {RandomPublicKey()}
            AllowedIPs = 10.65.0.0/24, 10.66.0.0/24
            """);
        var result = ns.Run(TunneldBinary.Path, "up", path);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains($"route add ... dev {name}: 10.66.0.0/24: File exists (errno 17)", result.Error);
        Assert.DoesNotContain("   at ", result.Error + result.Output);
        Assert.NotEqual(0, ns.Run("ip", "link", "show", "dev", name).ExitCode);
        Assert.DoesNotContain("10.65.0.0/24", ns.Check("ip", "route", "show", "table", "all"));
    }

    private string WriteConfig(string name, string text)
    {
        var path = Path.Combine(_dir, name + ".conf");
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    /// <summary>Any 32 bytes are a public key to the parser; 20,000 real ones would take `wg pubkey` minutes.</summary>
    private static string RandomPublicKey() => Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    /// <summary>A path socket for NOTIFY_SOCKET (abstract ones belong to a network namespace).</summary>
    private Socket NotifySocket(out string path)
    {
        path = Path.Combine(_dir, "notify");
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        socket.ReceiveTimeout = 1_000; // WaitReady looks at the daemon between tries
        return socket;
    }

    /// <summary>The first notification, or why there was none: the daemon exited (its output), or
    /// nothing came within three minutes (20,000 peers: parsing and adding them, on a loaded
    /// machine).</summary>
    private static string WaitReady(Socket socket, BackgroundProcess daemon)
    {
        var buffer = new byte[256];
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                return Encoding.UTF8.GetString(buffer, 0, socket.Receive(buffer));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                if (daemon.HasExited)
                    return $"tunneld exited {daemon.ExitCode} before READY=1";
            }
        }
        return "no READY=1 within 3 minutes";
    }

    /// <summary>The <c>dst</c> of every route <c>ip -j route show ...</c> lists: a host route's
    /// without its /32 or /128 and in .NET's text form ("fd64::", not ip's "fd64::0").</summary>
    private static HashSet<string> Destinations(NetNs ns, string family, params string[] filter)
    {
        var json = ns.Check(["ip", "-j", family, "route", "show", .. filter]);
        using var document = JsonDocument.Parse(json);
        return document.RootElement.EnumerateArray()
            .Select(route => route.GetProperty("dst").GetString()!)
            .Select(dst => dst.Contains('/') ? dst : IPAddress.Parse(dst).ToString())
            .ToHashSet();
    }
}
