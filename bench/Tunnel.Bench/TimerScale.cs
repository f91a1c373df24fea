using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using ForkNotify;
using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// Issue 12 at 1,000 / 10,000 / 100,000 peers, with Stopwatch (each case is one big operation, too
/// slow for BenchmarkDotNet's repetitions at 100,000):
/// <list type="bullet">
/// <item><c>idle</c>: what the timer thread costs for idle peers, per 100 ms tick (its wake-up
/// cap): <see cref="TunnelDevice.Tick"/> + <see cref="TunnelDevice.NextDeadlineNanos"/> against the
/// full scan they replaced (every peer's Tick and NextDeadline, the old loop bodies, run here
/// through the same internal methods). Peers idle with no deadline armed, and idle with one armed
/// far ahead (a persistent keepalive of 65,535 s: in the timer queue, never due).</item>
/// <item><c>clear</c>: <see cref="TunnelDevice.ClearAllSessions"/> with a current keypair on
/// every peer (median of 5).</item>
/// <item><c>rekey</c>: a hub (A, under a Notifier fork guard in a guest kernel) with N peers, each
/// a real responder device in the same process; every peer has a session; a fork; then the host's
/// timer loop (Tick, sleep to the next deadline) in virtual time, every datagram delivered at
/// once, until every peer has a session again. Reports the virtual time that took (the pacing),
/// the wall time of the notification (zeroing) and of the whole rekey's work (both sides'
/// handshakes; the virtual clock jumps over the waits), against the X25519 bound.</item>
/// </list>
/// </summary>
internal static class TimerScale
{
    /// <summary>timer-scale [idle|clear|rekey]... [--peers N,N,...] [--rate initiations-per-second]</summary>
    public static int Run(string[] args)
    {
        int[] sizes = [1_000, 10_000, 100_000];
        long spacing = RekeyPacer.DefaultSpacingNanos;
        var parts = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--peers" && i + 1 < args.Length)
                sizes = args[++i].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            else if (args[i] == "--rate" && i + 1 < args.Length)
                spacing = Constants.NanosPerSecond / long.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] is "idle" or "clear" or "rekey")
                parts.Add(args[i]);
            else
            {
                Console.Error.WriteLine("usage: Tunnel.Bench timer-scale [idle|clear|rekey]... [--peers N,N,...] [--rate N]");
                return 2;
            }
        }
        if (parts.Count == 0)
            parts = ["idle", "clear", "rekey"];
        foreach (string part in parts)
        {
            switch (part)
            {
                case "idle":
                    Console.WriteLine("| Peers | Armed | Old scan per tick (µs) | Tick + NextDeadline per tick (µs) | Old: % of a core at 10 ticks/s | New: % of a core |");
                    Console.WriteLine("|------:|:-----:|-----:|-----:|-----:|-----:|");
                    foreach (int n in sizes)
                    {
                        // One device for both (adding 100,000 peers is itself slow today: issue 12's AddPeer).
                        using var device = new GuardedDevice(ForkGuardMode.Notifier);
                        Peer[] peers = device.AddPeers(n);
                        device.InstallKeypairs(peers);
                        Idle(device, peers, armed: false);
                        foreach (Peer peer in peers)
                            peer.PersistentKeepaliveInterval = ushort.MaxValue;
                        Idle(device, peers, armed: true);
                    }
                    break;
                case "clear":
                    Console.WriteLine("| Peers | ClearAllSessions median of 5 (ms) | min (ms) |");
                    Console.WriteLine("|------:|-----:|-----:|");
                    foreach (int n in sizes)
                        Clear(n);
                    break;
                case "rekey":
                    Console.WriteLine("| Peers | Notification returns (ms) | Virtual time to all sessions (s) | Wall time of the rekey's work (s) | Per peer (µs) | X25519 bound, initiator side (s) | Both sides (s) | Hub's initiations | Hub's cookie replies |");
                    Console.WriteLine("|------:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|-----:|");
                    Console.WriteLine($"(pace: one initiation every {spacing / 1000} µs)");
                    foreach (int n in sizes)
                        Rekey(n, spacing);
                    break;
            }
            Console.WriteLine();
        }
        return 0;
    }

    private static void Idle(GuardedDevice device, Peer[] peers, bool armed)
    {
        int count = peers.Length;
        const int ticks = 50;
        const long step = 100 * Constants.NanosPerMillisecond;
        // Warm up both loops (tiered JIT).
        for (int i = 0; i < 20; i++)
        {
            OldScan(peers, device.Clock.MonotonicNanos);
            device.A.Tick();
            _ = device.A.NextDeadlineNanos;
        }
        long old = 0, now = 0;
        for (int i = 0; i < ticks; i++)
        {
            device.Clock.AdvanceNanos(step);
            long t0 = Stopwatch.GetTimestamp();
            OldScan(peers, device.Clock.MonotonicNanos);
            long t1 = Stopwatch.GetTimestamp();
            device.A.Tick();
            _ = device.A.NextDeadlineNanos;
            long t2 = Stopwatch.GetTimestamp();
            old += t1 - t0;
            now += t2 - t1;
        }
        double oldMicros = old * 1e6 / Stopwatch.Frequency / ticks;
        double newMicros = now * 1e6 / Stopwatch.Frequency / ticks;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {count:N0} | {(armed ? "yes" : "no")} | {oldMicros:N1} | {newMicros:N2} | {oldMicros * 10 / 1e4:N2} % | {newMicros * 10 / 1e4:N4} % |"));
    }

    /// <summary>The loop bodies Tick and NextDeadlineNanos had before the timer queue.</summary>
    private static long OldScan(Peer[] peers, long now)
    {
        foreach (Peer peer in peers)
            peer.Tick(now);
        long next = long.MaxValue;
        foreach (Peer peer in peers)
            next = Math.Min(next, peer.NextDeadline);
        return next;
    }

    private static void Clear(int count)
    {
        using var device = new GuardedDevice(ForkGuardMode.Notifier);
        Peer[] peers = device.AddPeers(count);
        var times = new double[6];
        for (int i = 0; i < times.Length; i++)
        {
            device.InstallKeypairs(peers);
            // As BenchmarkDotNet does between iterations: a collection of the set-up's garbage
            // (100,000 keypairs per round) must not land inside the measured call.
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long t0 = Stopwatch.GetTimestamp();
            device.A.ClearAllSessions();
            times[i] = (Stopwatch.GetTimestamp() - t0) * 1e3 / Stopwatch.Frequency;
        }
        double[] sorted = [.. times.Skip(1).Order()]; // the first is a warm-up
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {count:N0} | {sorted[sorted.Length / 2]:N1} | {sorted[0]:N1} |"));
    }

    /// <summary>Hands every datagram to a list with where it went.</summary>
    private sealed class RoutingIo : IDeviceIo
    {
        public List<(byte[] Bytes, Endpoint To)> Sent { get; } = [];

        public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to) => Sent.Add((datagram.ToArray(), to));

        public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from)
        {
        }
    }

    private static void Rekey(int count, long spacing)
    {
        var clock = new VirtualClock();
        var kernel = new ForkKernel(Random(32));
        kernel.SetBootVmId(VmId(1));
        var ioA = new RoutingIo();
        using var a = new TunnelDevice(new DeviceOptions { Clock = clock, Random = kernel.Random, Name = "hub" }, ioA);
        a.SetPrivateKey(Random(32));
        using var guard = new ForkGuard(a, kernel, ForkGuardMode.Notifier);
        a.Rekey.SpacingNanos = spacing;
        byte[] publicA = new byte[PublicKey.Size], publicB = new byte[PublicKey.Size];
        a.CopyPublicKey(publicA);
        Endpoint endpointA = Parse("192.0.2.1:51820");
        var responders = new TunnelDevice[count];
        var ios = new RoutingIo[count];
        var byEndpoint = new Dictionary<Endpoint, int>(count);
        var peers = new Peer[count];
        for (int i = 0; i < count; i++)
        {
            ios[i] = new RoutingIo();
            responders[i] = new TunnelDevice(new DeviceOptions { Clock = clock, Random = OsRandomGenerator.Instance }, ios[i]);
            responders[i].SetPrivateKey(Random(32));
            responders[i].CopyPublicKey(publicB);
            Peer hub = responders[i].AddPeer(publicA);
            hub.Endpoint = endpointA;
            Endpoint to = Parse($"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:51821");
            byEndpoint[to] = i;
            peers[i] = a.AddPeer(publicB);
            peers[i].Endpoint = to;
        }
        InstallKeypairs(a, peers, clock);
        clock.Advance(TimeSpan.FromSeconds(1));

        int gen0 = GC.CollectionCount(0), gen2 = GC.CollectionCount(2);
        long t0 = Stopwatch.GetTimestamp();
        if (!kernel.AddVmForkRandomness(VmId(2)))
            throw new InvalidOperationException("the kernel did not take the new VM ID");
        long t1 = Stopwatch.GetTimestamp();
        Console.Error.WriteLine($"notification: {GC.CollectionCount(0) - gen0} collections, {GC.CollectionCount(2) - gen2} of them gen2");
        long forkNanos = clock.MonotonicNanos;
        int done = 0;
        long allAt = 0;
        int initiations = 0, cookieReplies = 0;
        while (true)
        {
            a.Tick();
            // Deliver until quiet: initiations to their responders, responses back to the hub.
            while (ioA.Sent.Count > 0)
            {
                (byte[] Bytes, Endpoint To)[] batch = [.. ioA.Sent];
                ioA.Sent.Clear(); // the hub answers as it receives (a keepalive after a response)
                foreach ((byte[] bytes, Endpoint to) in batch)
                {
                    initiations += MessageHeader.ReadType(bytes) == MessageType.Initiation ? 1 : 0;
                    cookieReplies += MessageHeader.ReadType(bytes) == MessageType.CookieReply ? 1 : 0;
                    int i = byEndpoint[to];
                    responders[i].ReceiveDatagram(bytes, endpointA);
                    (byte[] Bytes, Endpoint To)[] replies = [.. ios[i].Sent];
                    ios[i].Sent.Clear();
                    foreach ((byte[] reply, _) in replies)
                        a.ReceiveDatagram(reply, to);
                }
            }
            done = 0;
            if (a.Rekey.Pending == 0)
            {
                foreach (Peer peer in peers)
                    done += peer.Keypairs.Current is { CanSend: true } ? 1 : 0;
                if (done == count)
                {
                    allAt = clock.MonotonicNanos;
                    break;
                }
            }
            long next = Math.Min(a.NextDeadlineNanos, clock.MonotonicNanos + 100 * Constants.NanosPerMillisecond);
            if (next > clock.MonotonicNanos)
                clock.AdvanceNanos(next - clock.MonotonicNanos);
            if (clock.MonotonicNanos - forkNanos > 600 * Constants.NanosPerSecond)
                throw new InvalidOperationException($"only {done} of {count} peers rekeyed after 600 s");
        }
        long t2 = Stopwatch.GetTimestamp();
        double work = (t2 - t1) / (double)Stopwatch.Frequency;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {count:N0} | {(t1 - t0) * 1e3 / Stopwatch.Frequency:N1} | {(allAt - forkNanos) / 1e9:N3} | {work:N2} | {work * 1e6 / count:N0} | {count * 2 * 30e-6:N2} | {count * 8 * 30e-6:N2} | {initiations:N0} | {cookieReplies:N0} |"));
        foreach (TunnelDevice b in responders)
            b.Dispose();
    }

    /// <summary>A current keypair on every peer without a handshake (see GuardedDevice.InstallKeypairs).</summary>
    private static void InstallKeypairs(TunnelDevice device, Peer[] peers, VirtualClock clock)
    {
        Span<byte> send = stackalloc byte[32];
        Span<byte> receive = stackalloc byte[32];
        foreach (Peer peer in peers)
        {
            OsRandomGenerator.Instance.Fill(send);
            OsRandomGenerator.Instance.Fill(receive);
            uint local = device.Indexes.Insert(peer);
            var keys = new SessionKeys(send, receive, isInitiator: true, local, 1);
            var keypair = new Keypair(keys, peer, clock.MonotonicNanos, 0);
            if (!device.Indexes.Replace(local, peer, keypair))
                throw new InvalidOperationException("index table refused the keypair");
            peer.Keypairs.Add(keypair, out _, out _);
        }
    }

    private static byte[] Random(int n)
    {
        byte[] bytes = new byte[n];
        OsRandomGenerator.Instance.Fill(bytes);
        return bytes;
    }

    private static byte[] VmId(uint n)
    {
        byte[] id = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(id, n);
        id[4] = 0xbe;
        return id;
    }

    private static Endpoint Parse(string text) =>
        Endpoint.TryParse(text, out Endpoint ep) ? ep : throw new ArgumentException(text);
}
