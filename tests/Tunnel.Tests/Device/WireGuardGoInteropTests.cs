using System.Buffers.Binary;
using System.Diagnostics;
using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Noise;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Device;

/// <summary>
/// Wire compatibility with a real implementation: our initiation (with mac1) goes to wireguard-go in
/// a private network namespace, its response must pass our mac1 check and complete our handshake,
/// and an ICMP echo sealed with our transport key must come back as an echo reply we can open.
/// Needs root, wireguard-go, wg and ip; everything created is removed, pass or fail.
/// </summary>
public sealed class WireGuardGoInteropTests
{
    private const string RelayScript = """
        import socket, sys, select
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = int(sys.argv[1])
        for line in sys.stdin:
            s.sendto(bytes.fromhex(line.strip()), ("127.0.0.1", port))
            r, _, _ = select.select([s], [], [], 5)
            if not r:
                print("timeout", flush=True)
                continue
            data, _ = s.recvfrom(65535)
            print(data.hex(), flush=True)
        """;

    [Fact]
    public void HandshakeAndPing_WithWireGuardGo()
    {
        if (Environment.UserName != "root" && !string.Equals(Environment.GetEnvironmentVariable("USER"), "root"))
            Assert.Skip("needs root (network namespace and TUN device for wireguard-go)");
        foreach (var tool in new[] { "wireguard-go", "wg", "ip", "python3" })
            if (!OnPath(tool))
                Assert.Skip($"needs {tool} (installed by scripts/setup.sh)");

        int id = Environment.ProcessId % 100000;
        string ns = $"tcry{id}";
        string wgName = $"wgc{id}";
        string keyFile = Path.Combine(Path.GetTempPath(), $"tunnel-crypto-{id}.key");
        const int port = 51899;
        Process? daemon = null;
        Process? relay = null;
        var random = new SeededRandom(id);
        using var ourKey = PrivateKey.Generate(random);
        using var theirKey = PrivateKey.Generate(random);
        try
        {
            Run("ip", $"netns add {ns}");
            Run("ip", $"-n {ns} link set lo up");
            File.WriteAllText(keyFile, Convert.ToBase64String(theirKey.Secret));
            daemon = Process.Start(new ProcessStartInfo("ip", $"netns exec {ns} wireguard-go -f {wgName}")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            string socketPath = $"/var/run/wireguard/{wgName}.sock";
            var deadline = Stopwatch.StartNew();
            while (!File.Exists(socketPath) && deadline.Elapsed < TimeSpan.FromSeconds(10))
                Thread.Sleep(50);
            Assert.True(File.Exists(socketPath), "wireguard-go did not start");
            Run("ip", $"netns exec {ns} wg set {wgName} listen-port {port} private-key {keyFile} " +
                      $"peer {ourKey.PublicKey.ToBase64()} allowed-ips 10.77.0.2/32");
            Run("ip", $"-n {ns} addr add 10.77.0.1/24 dev {wgName}");
            Run("ip", $"-n {ns} link set {wgName} up");

            relay = Process.Start(new ProcessStartInfo("ip", $"netns exec {ns} python3 -c \"{RelayScript.Replace("\"", "\\\"")}\" {port}")
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
            })!;

            // Handshake: our initiation with mac1 for their key.
            var identity = new StaticIdentity(ourKey);
            using var handshake = new Handshake(identity, theirKey.PublicKey);
            using var cookies = new CookieGenerator(theirKey.PublicKey);
            var initiation = new byte[MessageInitiation.Size];
            Assert.True(NoiseProtocol.CreateInitiation(handshake, 0x0badcafe, Tai64N.FromDateTime(DateTimeOffset.UtcNow), random, initiation));
            Assert.True(cookies.AddMacs(initiation, TimeSpan.Zero));
            byte[] response = Exchange(relay, initiation);
            Assert.Equal(MessageResponse.Size, response.Length);

            using var ourChecker = new CookieChecker(ourKey.PublicKey, random);
            Assert.True(ourChecker.CheckMac1(response), "mac1 of wireguard-go's response");
            Assert.True(NoiseProtocol.ConsumeResponse(handshake, response));
            using var keys = NoiseProtocol.BeginSession(handshake)!;

            // Transport: an ICMP echo request from 10.77.0.2 to 10.77.0.1.
            byte[] ping = IcmpEcho(type: 8);
            int padded = MessageTransport.PaddedLength(ping.Length, 1420);
            var data = new byte[MessageTransport.MessageSize(padded)];
            MessageTransport.WriteHeader(data, keys.RemoteIndex, 0);
            var plain = new byte[padded];
            ping.CopyTo(plain, 0);
            var nonce = new byte[12];
            CipherState.WriteNonce(nonce, 0);
            Sodium.ChaCha20Poly1305Encrypt(data.AsSpan(MessageTransport.ContentOffset), plain, default, nonce, keys.Send.Bytes);

            byte[] reply = Exchange(relay, data);
            Assert.True(MessageTransport.IsWellFormed(reply));
            Assert.Equal(keys.LocalIndex, MessageTransport.ReceiverIndex(reply));
            CipherState.WriteNonce(nonce, MessageTransport.Counter(reply));
            var opened = new byte[reply.Length - MessageTransport.MinimumSize];
            Assert.True(Sodium.ChaCha20Poly1305Decrypt(opened, reply.AsSpan(MessageTransport.ContentOffset), default, nonce, keys.Receive.Bytes));
            Assert.Equal(0x45, opened[0]);
            Assert.Equal(1, opened[9]);            // ICMP
            Assert.Equal(0, opened[20]);           // echo reply
            Assert.Equal(ping[28..], opened[28..ping.Length]);
        }
        finally
        {
            Stop(relay);
            Stop(daemon);
            RunQuietly("ip", $"netns del {ns}");
            File.Delete(keyFile);
            File.Delete($"/var/run/wireguard/{wgName}.sock");
        }
    }

    private static byte[] Exchange(Process relay, byte[] datagram)
    {
        relay.StandardInput.WriteLine(Convert.ToHexStringLower(datagram));
        relay.StandardInput.Flush();
        string? line = relay.StandardOutput.ReadLine();
        Assert.False(line is null or "timeout", "no answer from wireguard-go");
        return Convert.FromHexString(line!);
    }

    private static byte[] IcmpEcho(byte type)
    {
        var packet = new byte[20 + 8 + 16];
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;   // TTL
        packet[9] = 1;    // ICMP
        new byte[] { 10, 77, 0, 2 }.CopyTo(packet, 12);
        new byte[] { 10, 77, 0, 1 }.CopyTo(packet, 16);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(10), Checksum(packet.AsSpan(0, 20)));
        packet[20] = type;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(24), 0x1234); // identifier
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(26), 1);      // sequence
        "tunnel-crypto-ok"u8.CopyTo(packet.AsSpan(28));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(22), Checksum(packet.AsSpan(20)));
        return packet;
    }

    private static ushort Checksum(ReadOnlySpan<byte> bytes)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < bytes.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(bytes[i..]);
        if (bytes.Length % 2 == 1)
            sum += (uint)bytes[^1] << 8;
        while (sum > 0xffff)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Concat(["/usr/sbin", "/sbin", "/usr/bin"])
            .Any(dir => File.Exists(Path.Combine(dir, tool)));

    private static void Run(string file, string arguments)
    {
        using var p = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true })!;
        string error = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {arguments}: {error}");
    }

    private static void RunQuietly(string file, string arguments)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true })!;
            p.StandardError.ReadToEnd();
            p.WaitForExit();
        }
        catch (Exception)
        {
            // Clean-up is best effort; the namespace name is unique to this process.
        }
    }

    private static void Stop(Process? process)
    {
        if (process is null)
            return;
        try
        {
            if (!process.HasExited)
            {
                process.Kill();
                process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        process.Dispose();
    }
}
