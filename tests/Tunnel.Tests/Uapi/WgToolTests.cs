using System.Diagnostics;
using System.Net;
using ForkNotify;
using Tunnel.Config;
using Tunnel.Device;
using Tunnel.Transport;
using Tunnel.Uapi;
using Xunit;

namespace Tunnel.Tests.Uapi;

/// <summary>
/// The real wg(8) from wireguard-tools against the real server on /var/run/wireguard, backed by an
/// in-memory device. Needs root (the directory) and wg; each test uses its own interface name.
/// </summary>
public sealed class WgToolTests : IAsyncLifetime
{
    private static readonly byte[] PrivateKey = Enumerable.Range(1, 32).Select(i => (byte)(i * 7)).ToArray();
    private static readonly byte[] PeerKey = Enumerable.Range(1, 32).Select(i => (byte)(i * 3)).ToArray();
    private static readonly byte[] Psk = Enumerable.Range(1, 32).Select(i => (byte)(255 - i)).ToArray();

    private readonly string _name = "tu" + Guid.NewGuid().ToString("N")[..8];
    private readonly InMemoryUapiDevice _device = new();
    private UapiServer? _server;

    public ValueTask InitializeAsync()
    {
        if (Environment.UserName != "root" && !IsRoot())
            Assert.Skip("needs root: serves a socket in /var/run/wireguard");
        if (!File.Exists("/usr/bin/wg") && !File.Exists("/usr/local/bin/wg"))
            Assert.Skip("needs wg from wireguard-tools (apt-get install wireguard-tools)");
        _device.PrivateKey = PrivateKey.ToArray();
        _device.ListenPort = 51820;
        var peer = new InMemoryUapiDevice.Peer
        {
            PublicKey = PeerKey.ToArray(),
            PresharedKey = Psk.ToArray(),
            Endpoint = new IPEndPoint(IPAddress.Parse("10.99.0.2"), 51821),
            Keepalive = 25,
            LastHandshakeUnixNanos = DateTimeOffset.UtcNow.AddSeconds(-5).ToUnixTimeMilliseconds() * 1_000_000,
            Tx = 788,
            Rx = 732,
        };
        peer.AllowedIps.Add(IPNetwork.Parse("10.200.0.2/32"));
        peer.AllowedIps.Add(IPNetwork.Parse("fd00:200::/64"));
        _device.Peers.Add(peer);
        _device.ExtraKeys.Add(new("fork_generation", "3"));
        _server = new UapiServer(_name, _device);
        _server.Start();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
    }

    private static bool IsRoot() => Run("id", "-u").Output.Trim() == "0";

    private static (int Exit, string Output) Run(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
            start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var output = p.StandardOutput.ReadToEndAsync();
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(20_000))
        {
            p.Kill();
            throw new TimeoutException($"{file} did not finish");
        }
        return (p.ExitCode, output.Result + error.Result);
    }

    private static string B64(byte[] key) => Convert.ToBase64String(key);

    [Fact]
    public void WgShowDumpListsEveryField()
    {
        var (exit, output) = Run("wg", "show", _name, "dump");
        Assert.Equal(0, exit);
        var lines = output.TrimEnd('\n').Split('\n');
        Assert.Equal(2, lines.Length);
        var device = lines[0].Split('\t');
        Assert.Equal(B64(PrivateKey), device[0]);
        Assert.Equal("51820", device[2]);
        Assert.Equal("off", device[3]);
        var peer = lines[1].Split('\t');
        Assert.Equal(B64(PeerKey), peer[0]);
        Assert.Equal(B64(Psk), peer[1]);
        Assert.Equal("10.99.0.2:51821", peer[2]);
        Assert.Equal("10.200.0.2/32,fd00:200::/64", peer[3]);
        Assert.InRange(long.Parse(peer[4]), DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 60, DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        Assert.Equal("732", peer[5]);
        Assert.Equal("788", peer[6]);
        Assert.Equal("25", peer[7]);
    }

    [Fact]
    public void WgShowHumanReadable()
    {
        var (exit, output) = Run("wg", "show", _name);
        Assert.Equal(0, exit);
        Assert.Contains($"interface: {_name}", output);
        Assert.Contains($"peer: {B64(PeerKey)}", output);
        Assert.Contains("latest handshake:", output);
        Assert.Contains("transfer: 732 B received, 788 B sent", output);
        Assert.Contains("persistent keepalive: every 25 seconds", output);
        Assert.DoesNotContain(B64(PrivateKey), output); // wg show hides it
    }

    [Fact]
    public void WgSetChangesThePeer()
    {
        var (exit, output) = Run("wg", "set", _name, "listen-port", "51999", "fwmark", "0x1234",
            "peer", B64(PeerKey), "allowed-ips", "10.201.0.0/24,10.200.0.2/32", "endpoint", "[fd00::9]:4500",
            "persistent-keepalive", "off");
        Assert.True(exit == 0, output);
        Assert.Equal(51999, _device.ListenPort);
        Assert.Equal(0x1234u, _device.FwMark);
        var peer = _device.Peers.Single();
        Assert.Equal(new IPEndPoint(IPAddress.Parse("fd00::9"), 4500), peer.Endpoint);
        Assert.Equal(0, peer.Keepalive);
        // wg set allowed-ips replaces the list.
        Assert.Equal(["10.201.0.0/24", "10.200.0.2/32"], peer.AllowedIps.Select(p => p.ToString()));
    }

    [Fact]
    public void WgSetAddsAndRemovesPeers()
    {
        var newKey = Enumerable.Repeat((byte)9, 32).ToArray();
        Assert.Equal(0, Run("wg", "set", _name, "peer", B64(newKey), "allowed-ips", "10.202.0.1/32").Exit);
        Assert.Equal(2, _device.Peers.Count);
        Assert.Equal(0, Run("wg", "set", _name, "peer", B64(PeerKey), "remove").Exit);
        Assert.Equal(newKey, _device.Peers.Single().PublicKey);
    }

    [Fact]
    public void WgShowconfRoundTripsThroughSetconf()
    {
        var (exit, conf) = Run("wg", "showconf", _name);
        Assert.Equal(0, exit);
        // The same text is a valid tunneld config ([Interface] plus [Peer], no Address).
        using (var parsed = new ConfigParser().Parse(conf, "showconf"))
        {
            Assert.Equal(PrivateKey, parsed.Interface.PrivateKey);
            Assert.Equal(51820, parsed.Interface.ListenPort);
            Assert.Equal(PeerKey, parsed.Peers.Single().PublicKey);
            Assert.Equal(Psk, parsed.Peers.Single().PresharedKey!);
            Assert.Equal(25, parsed.Peers.Single().PersistentKeepalive);
        }

        // Feed it back with setconf into a second, empty device: same configuration.
        var file = Path.GetTempFileName();
        var secondName = "tv" + Guid.NewGuid().ToString("N")[..8];
        var second = new InMemoryUapiDevice();
        var server = new UapiServer(secondName, second);
        try
        {
            File.WriteAllText(file, conf);
            server.Start();
            var (setExit, setOutput) = Run("wg", "setconf", secondName, file);
            Assert.True(setExit == 0, setOutput);
            Assert.Equal(conf, Run("wg", "showconf", secondName).Output);
        }
        finally
        {
            File.Delete(file);
            server.DisposeAsync().AsTask().Wait();
        }
    }

    [Fact]
    public void ForkKeysChangeNothingThatWgShows()
    {
        // The exact set the daemon writes (with a pull counter, so every key is there).
        var keys = new List<KeyValuePair<string, string>>();
        using (var fork = new ForkProtection(new ForkKernel(), ForkGuardMode.Both, ForkSourceKind.VmClock, null,
            new VmGeneration(5)))
            fork.AddExtraKeys(keys);
        Assert.Contains(keys, k => k.Key == "fork_pull_counter");

        // wg runs to completion between the changes: the server never reads the list meanwhile.
        _device.ExtraKeys.Clear();
        var without = WgViews();
        _device.ExtraKeys.AddRange(keys);
        var with = WgViews();

        Assert.Equal(without, with);
        Assert.DoesNotContain("fork", string.Join('\n', with));
    }

    /// <summary>wg show (minus the line that counts seconds), dump, showconf: each must succeed.</summary>
    private string[] WgViews()
    {
        string[][] commands = [["show", _name], ["show", _name, "dump"], ["showconf", _name]];
        return commands.Select(args =>
        {
            var (exit, output) = Run("wg", args);
            Assert.True(exit == 0, output);
            return string.Join('\n', output.Split('\n').Where(l => !l.Contains("latest handshake:")));
        }).ToArray();
    }

    [Fact]
    public void SocketIsGoneAfterDispose()
    {
        var path = _server!.SocketPath;
        Assert.Equal($"/var/run/wireguard/{_name}.sock", path);
        _server.DisposeAsync().AsTask().Wait();
        Assert.False(File.Exists(path));
        Assert.NotEqual(0, Run("wg", "show", _name).Exit);
    }
}
