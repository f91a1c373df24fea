using System.Net.Sockets;
using System.Text;
using Xunit;

namespace Integration.Tests;

/// <summary>A key pair for one end of a tunnel, made by the tools under test.</summary>
public sealed record KeyPair(string Private, string Public)
{
    /// <summary><c>tunneld genkey | tunneld pubkey</c>, cross-checked once with <c>wg pubkey</c>.</summary>
    public static KeyPair Create()
    {
        var secret = ProcessRunner.Check([TunneldBinary.Path, "genkey"]).Trim();
        var pub = ProcessRunner.Check([TunneldBinary.Path, "pubkey"], secret + "\n").Trim();
        return new KeyPair(secret, pub);
    }
}

/// <summary>
/// The two kinds of tunnel end the integration tests join: tunneld started from a config file, and
/// wireguard-go configured with wg. Each lives in a test's <see cref="NetNs"/>, which stops it and
/// removes its UAPI socket, pass or fail.
/// </summary>
public static class TunnelEnds
{
    /// <summary>Writes <paramref name="config"/> (0600) to <paramref name="dir"/> and runs
    /// <c>tunneld up</c> in <paramref name="ns"/> with <paramref name="options"/> after the file;
    /// returns once its UAPI socket answers.</summary>
    public static BackgroundProcess StartTunneld(NetNs ns, string dir, string name, string config, params string[] options)
    {
        var path = Path.Combine(dir, name + ".conf");
        File.WriteAllText(path, config);
        if (OperatingSystem.IsLinux()) // always, here; the guard tells the platform analyzer
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var socket = SocketPath(name);
        ns.RemoveOnDispose(socket);
        var daemon = ns.StartWithEnvironment(new Dictionary<string, string> { ["Logging__LogLevel__Default"] = "Debug" },
            [TunneldBinary.Path, "up", path, .. options]);
        WaitForSocket(socket, daemon);
        return daemon;
    }

    /// <summary>Runs wireguard-go in the foreground in <paramref name="ns"/>; returns once its UAPI
    /// socket exists. Configure it with <see cref="ConfigureWg"/>.</summary>
    public static BackgroundProcess StartWireguardGo(NetNs ns, string name)
    {
        var socket = SocketPath(name);
        ns.RemoveOnDispose(socket);
        var daemon = ns.Start("wireguard-go", "-f", name);
        WaitForSocket(socket, daemon);
        return daemon;
    }

    /// <summary>
    /// <c>wg set NAME listen-port PORT private-key KEY peer PUB ...</c> (keys through stdin, never on
    /// the command line), then addresses (nodad) and link up, as wg-quick would.
    /// </summary>
    public static void ConfigureWg(NetNs ns, string name, int port, KeyPair keys, string peerPublic,
        string allowedIps, string? endpoint, string[] addresses, string? presharedKey = null)
    {
        string[] command = ["wg", "set", name, "listen-port", port.ToString(), "private-key", "/dev/fd/0",
            "peer", peerPublic, "allowed-ips", allowedIps];
        if (endpoint is not null)
            command = [.. command, "endpoint", endpoint];
        Check(ns.RunWithInput(keys.Private + "\n", command));
        if (presharedKey is not null)
            Check(ns.RunWithInput(presharedKey + "\n", "wg", "set", name, "peer", peerPublic, "preshared-key", "/dev/fd/0"));
        foreach (var address in addresses)
            ns.Check(address.Contains(':') ? ["ip", "-6", "addr", "add", address, "dev", name, "nodad"] : ["ip", "addr", "add", address, "dev", name]);
        ns.Check("ip", "link", "set", name, "up");
    }

    public static string SocketPath(string name) => $"/var/run/wireguard/{name}.sock";

    /// <summary>
    /// The device-level keys of a raw UAPI <c>get=1</c> (everything before the first
    /// <c>public_key</c>), including the extra keys wg does not show.
    /// </summary>
    public static Dictionary<string, string> UapiDeviceKeys(string name)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.ReceiveTimeout = 10_000;
        socket.Connect(new UnixDomainSocketEndPoint(SocketPath(name)));
        socket.Send("get=1\n\n"u8);
        var reply = new StringBuilder();
        var buffer = new byte[4096];
        while (!reply.ToString().EndsWith("\n\n", StringComparison.Ordinal))
        {
            var n = socket.Receive(buffer);
            if (n == 0)
                break;
            reply.Append(Encoding.ASCII.GetString(buffer, 0, n));
        }
        var keys = new Dictionary<string, string>();
        foreach (var line in reply.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=');
            if (line.StartsWith("public_key=", StringComparison.Ordinal))
                break;
            if (eq > 0)
                keys[line[..eq]] = line[(eq + 1)..];
        }
        return keys;
    }

    /// <summary>The first peer's line of <c>wg show NAME dump</c>: public key, psk, endpoint,
    /// allowed ips, latest handshake, rx, tx, keepalive.</summary>
    public static string[] PeerDump(NetNs ns, string name)
    {
        var lines = ns.Check("wg", "show", name, "dump").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length >= 2, $"no peer in wg show {name} dump:\n{string.Join('\n', lines)}");
        return lines[1].Split('\t');
    }

    public static long LatestHandshake(NetNs ns, string name) => long.Parse(PeerDump(ns, name)[4]);
    public static ulong RxBytes(NetNs ns, string name) => ulong.Parse(PeerDump(ns, name)[5]);
    public static ulong TxBytes(NetNs ns, string name) => ulong.Parse(PeerDump(ns, name)[6]);

    /// <summary>Pings until one answer comes back (the first may wait for a handshake), then
    /// <paramref name="count"/> more must all be answered.</summary>
    public static void Ping(NetNs ns, string address, int count = 3, BackgroundProcess? daemon = null)
    {
        var six = address.Contains(':');
        string[] ping = six ? ["ping", "-6"] : ["ping", "-4"];
        var first = ns.Run([.. ping, "-c", "1", "-w", "15", address]);
        Assert.True(first.ExitCode == 0, $"no answer from {address} within 15 s: {first}\n{daemon?.Output}");
        var rest = ns.Run([.. ping, "-c", count.ToString(), "-i", "0.2", "-W", "3", address]);
        Assert.True(rest.ExitCode == 0, $"pings to {address} lost: {rest}\n{daemon?.Output}");
    }

    public static void Check(CommandResult result) => Assert.True(result.ExitCode == 0, result.ToString());

    /// <summary>Waits until <paramref name="condition"/> holds, or fails with <paramref name="what"/>.</summary>
    public static void Eventually(Func<bool> condition, TimeSpan timeout, Func<string> what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                Assert.Fail(what());
            Thread.Sleep(100);
        }
    }

    private static void WaitForSocket(string socket, BackgroundProcess daemon)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!File.Exists(socket))
        {
            if (daemon.HasExited)
                Assert.Fail($"{daemon.Command} exited ({daemon.ExitCode}): {daemon.Output}");
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"{socket} did not appear: {daemon.Output}");
            Thread.Sleep(50);
        }
    }
}
