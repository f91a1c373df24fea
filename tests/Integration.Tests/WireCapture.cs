using System.Diagnostics;
using System.Globalization;
using Xunit;

namespace Integration.Tests;

/// <summary>One WireGuard message seen on the wire.</summary>
/// <param name="Nanos">CLOCK_MONOTONIC when captured (comparable with <see cref="WireCapture.Now"/>).</param>
/// <param name="Type">1 initiation, 2 response, 4 transport (cookie replies are not recorded).</param>
/// <param name="Sender">The sender index of an initiation or response (0 for transport).</param>
/// <param name="Receiver">The receiver index of a response or transport message (0 for an initiation).</param>
public sealed record WireMessage(long Nanos, string From, string To, int Type, uint Sender, uint Receiver);

/// <summary>
/// Records the WireGuard messages crossing a veth interface inside a namespace: a python3
/// AF_PACKET socket (both directions) prints one line per IPv4 UDP datagram that looks like a
/// handshake or transport message. Stopped with its namespace.
/// </summary>
public sealed class WireCapture
{
    private const string Script = """
        import socket, struct, sys, time
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.bind((sys.argv[1], 0))
        print('ready', flush=True)
        while True:
            frame = s.recv(65535)
            now = time.monotonic_ns()
            if len(frame) < 14 + 20 + 8 + 16 or frame[12:14] != b'\x08\x00':
                continue
            ip = frame[14:]
            if ip[9] != 17:
                continue
            udp = ip[(ip[0] & 15) * 4:]
            sport, dport = struct.unpack('!HH', udp[:4])
            wg = udp[8:]
            if len(wg) < 16 or wg[1:4] != b'\0\0\0':
                continue
            kind = wg[0]
            if kind == 1:
                sender, receiver = struct.unpack('<I', wg[4:8])[0], 0
            elif kind == 2:
                sender, receiver = struct.unpack('<II', wg[4:12])
            elif kind == 4:
                sender, receiver = 0, struct.unpack('<I', wg[4:8])[0]
            else:
                continue
            src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            print(f'{now} {src}:{sport} {dst}:{dport} {kind} {sender} {receiver}', flush=True)
        """;

    private readonly BackgroundProcess _process;

    private WireCapture(BackgroundProcess process) => _process = process;

    /// <summary>Starts capturing on <paramref name="device"/> in <paramref name="ns"/>; returns once the socket is bound.</summary>
    public static WireCapture Start(NetNs ns, string device)
    {
        var process = ns.Start("python3", "-c", Script, device);
        TunnelEnds.Eventually(() => process.Output.Contains("ready") || process.HasExited, TimeSpan.FromSeconds(20),
            () => $"capture did not start: {process.Output}");
        Assert.False(process.HasExited, $"capture died: {process.Output}");
        return new WireCapture(process);
    }

    /// <summary>CLOCK_MONOTONIC now, in the capture's unit (Stopwatch reads the same clock on Linux).</summary>
    public static long Now() => (long)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>Everything captured so far, in order.</summary>
    public IReadOnlyList<WireMessage> Messages()
    {
        var messages = new List<WireMessage>();
        foreach (var line in _process.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = line.Split(' ');
            if (f.Length != 6 || !long.TryParse(f[0], CultureInfo.InvariantCulture, out var nanos))
                continue;
            messages.Add(new WireMessage(nanos, f[1], f[2], int.Parse(f[3], CultureInfo.InvariantCulture),
                uint.Parse(f[4], CultureInfo.InvariantCulture), uint.Parse(f[5], CultureInfo.InvariantCulture)));
        }
        return messages;
    }
}
