using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Device;
using Tunnel.Transport;

namespace Tunnel.Bench;

/// <summary>
/// The in-process pipeline with 1 and 2 crypto workers (issue 13): packets per second through
/// <see cref="SealStage"/> (prepare in order, seal on the workers, commit in order: the TUN
/// reader's path without the TUN read and the socket write) and through <see cref="OpenStage"/>
/// (prepare, open in place in its recvmmsg buffers, commit: replay window, the peer, delivery:
/// the UDP receiver's path without the recvmmsg and the TUN write), in batches of 64 packets (a
/// TSO read's segments, a recvmmsg's datagrams), the reader going on to the next batch while the
/// workers seal or open, as the daemon's threads do. The devices' IDeviceIo counts and discards. Not a BenchmarkDotNet run:
/// the workers are threads of their own, which BenchmarkDotNet's per-invocation model does not see.
/// <code>dotnet run -c Release --project bench/Tunnel.Bench -- pipeline [--seconds S]</code>
/// </summary>
internal static class PipelineScaling
{
    private const int Batch = 64;

    public static int Run(string[] args)
    {
        double seconds = 3;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--seconds")
                seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture);
        }
        Console.WriteLine($"pipeline, batches of {Batch}, {seconds} s per case, {Environment.ProcessorCount} CPUs, load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| direction | inner size | workers | packets/s | Gbit/s (inner) | vs 1 worker |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (string direction in new[] { "seal", "open" })
        {
            foreach (int size in new[] { 64, 1420 })
            {
                double single = 0;
                foreach (int workers in new[] { 1, 2 })
                {
                    double pps = direction == "seal" ? Seal(size, workers, seconds) : Open(size, workers, seconds);
                    if (workers == 1)
                        single = pps;
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {direction} | {size} | {workers} | {pps:N0} | {pps * size * 8 / 1e9:F2} | {pps / single:F2} |"));
                }
            }
        }
        Console.WriteLine();
        Console.WriteLine("One thread, the steps timed apart (ns per packet; the copy into place counted in prepare): the reader's serial share");
        Console.WriteLine("| direction | inner size | prepare | seal/open | commit | serial share | 2-core bound |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (string direction in new[] { "seal", "open" })
        {
            foreach (int size in new[] { 64, 1420 })
            {
                (double prepare, double crypto, double commit) = direction == "seal" ? SealSteps(size, seconds) : OpenSteps(size, seconds);
                double total = prepare + crypto + commit, serial = prepare + commit;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {direction} | {size} | {prepare:F0} | {crypto:F0} | {commit:F0} | {serial / total:P0} | {total / Math.Max(serial, total / 2):F2}x |"));
            }
        }
        return 0;
    }

    private const int Room = 2048; // a message's place in the step timings' buffer

    /// <summary>The send side's three steps one after the other on this thread, timed apart.</summary>
    private static (double, double, double) SealSteps(int size, double seconds)
    {
        using var pair = new Pair();
        byte[] packet = GuardedDevice.Packet(size);
        byte[] arena = new byte[Batch * Room];
        var jobs = new OutboundTransport[Batch];
        return TimeSteps(seconds, () =>
        {
            for (int i = 0; i < Batch; i++)
            {
                Span<byte> message = arena.AsSpan(i * Room, pair.A.MaxMessageSize(size));
                packet.CopyTo(message[MessageTransport.ContentOffset..]);
                pair.A.PrepareTransport(message, size, out jobs[i]);
            }
        }, () =>
        {
            for (int i = 0; i < Batch; i++)
                pair.A.SealTransport(ref jobs[i], arena.AsSpan(i * Room, jobs[i].MessageLength));
        }, () =>
        {
            for (int i = 0; i < Batch; i++)
                pair.A.CommitTransport(jobs[i], arena.AsSpan(i * Room, jobs[i].MessageLength));
        });
    }

    /// <summary>The receive side's three steps one after the other on this thread, timed apart.</summary>
    private static (double, double, double) OpenSteps(int size, double seconds)
    {
        using var pair = new Pair();
        var reads = new SealedReads(pair, size);
        byte[] arena = new byte[Batch * Room];
        var jobs = new InboundTransport[Batch];
        Keypair keypair = pair.PeerB.Keypairs.Current!;
        int next = 0;
        return TimeSteps(seconds, () =>
        {
            if (next == reads.Count)
            {
                keypair.ReplayFilter.Reset();
                next = 0;
            }
            for (int i = 0; i < Batch; i++)
            {
                byte[] sealedMessage = reads.Message(next++);
                sealedMessage.CopyTo(arena.AsSpan(i * Room));
                pair.A.PrepareReceive(arena.AsSpan(i * Room, sealedMessage.Length), out jobs[i]);
            }
        }, () =>
        {
            for (int i = 0; i < Batch; i++)
                pair.A.OpenTransport(ref jobs[i], arena.AsSpan(i * Room, jobs[i].MessageLength));
        }, () =>
        {
            for (int i = 0; i < Batch; i++)
            {
                Span<byte> message = arena.AsSpan(i * Room, jobs[i].MessageLength);
                pair.A.CommitReceive(jobs[i], message, GuardedDevice.EndpointB);
                message[MessageTransport.ContentOffset..^MessageTransport.TagSize].Clear(); // as OpenStage does
            }
        });
    }

    /// <summary>Nanoseconds per packet of each of three steps run batch after batch for <paramref name="seconds"/>.</summary>
    private static (double, double, double) TimeSteps(double seconds, Action prepare, Action crypto, Action commit)
    {
        long[] ticks = new long[3];
        long batches = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds + 0.5)
        {
            bool counted = clock.Elapsed.TotalSeconds >= 0.5; // the first half second warms up
            long t0 = Stopwatch.GetTimestamp();
            prepare();
            long t1 = Stopwatch.GetTimestamp();
            crypto();
            long t2 = Stopwatch.GetTimestamp();
            commit();
            long t3 = Stopwatch.GetTimestamp();
            if (!counted)
                continue;
            ticks[0] += t1 - t0;
            ticks[1] += t2 - t1;
            ticks[2] += t3 - t2;
            batches++;
        }
        double perPacket = 1e9 / Stopwatch.Frequency / (batches * Batch);
        return (ticks[0] * perPacket, ticks[1] * perPacket, ticks[2] * perPacket);
    }

    private static double Seal(int size, int workerCount, double seconds)
    {
        using var pair = new Pair();
        using var workers = new CryptoWorkers(workerCount, NullLogger.Instance);
        workers.Start();
        using var stage = new SealStage(pair.A, io: null, batch: null, workers);
        byte[] packet = GuardedDevice.Packet(size);
        return Measure(seconds, () =>
        {
            for (int i = 0; i < Batch; i++)
            {
                packet.CopyTo(stage.NextPacket(packet.Length));
                stage.Add(packet.Length);
            }
            stage.Run();
        }, stage.Drain, () => Volatile.Read(ref pair.Sent), workers);
    }

    private static double Open(int size, int workerCount, double seconds)
    {
        using var pair = new Pair();
        using var workers = new CryptoWorkers(workerCount, NullLogger.Instance);
        workers.Start();
        using var stage = new OpenStage(pair.A, workers);
        var reads = new SealedReads(pair, size);
        return Measure(seconds, () => reads.Next(stage), stage.Drain, () => Volatile.Read(ref pair.Delivered), workers);
    }

    /// <summary>Runs <paramref name="batch"/> for half a second, then for <paramref name="seconds"/>
    /// (and <paramref name="drain"/>, so that what is counted was committed); packets per second.</summary>
    private static double Measure(double seconds, Action batch, Action drain, Func<long> count, CryptoWorkers workers)
    {
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.5)
            batch();
        drain();
        long before = count(), wakeups = workers.Wakeups, batches = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            batch();
            batches++;
        }
        drain();
        double pps = (count() - before) / clock.Elapsed.TotalSeconds;
        if (workers.Workers > 1)
            Console.Error.WriteLine($"  {workers.Workers} workers: {workers.Wakeups - wakeups} futex wake-ups for {batches} batches");
        return pps;
    }

    /// <summary>
    /// What recvmmsg would bring: B's transport messages, sealed once (64 reads' worth), written
    /// into each read's buffer as 32 messages of two datagrams each (GRO runs); when they run
    /// out the stage is drained and the replay window reset, and they come round again.
    /// </summary>
    private sealed class SealedReads
    {
        private const int Rounds = 64;
        private readonly Pair _pair;
        private readonly byte[][] _sealed = new byte[Rounds * Batch][];
        private readonly Keypair _keypair;
        private int _next;

        public int Count => _sealed.Length;

        public byte[] Message(int index) => _sealed[index];

        public SealedReads(Pair pair, int size)
        {
            _pair = pair;
            byte[] packet = GuardedDevice.Packet(size);
            (packet[12], packet[13], packet[14], packet[15]) = (10, 9, 0, 2); // from B
            (packet[16], packet[17], packet[18], packet[19]) = (10, 9, 0, 1); // to A
            pair.IoB.Capture = true;
            for (int i = 0; i < _sealed.Length; i++)
                pair.B.SendPacket(packet);
            pair.IoB.Capture = false;
            for (int i = 0; i < _sealed.Length; i++)
                _sealed[i] = pair.IoB.Captured[i];
            pair.IoB.Captured.Clear();
            _keypair = pair.PeerB.Keypairs.Current!;
        }

        /// <summary>One read: into the stage's next buffer, taken apart, handed on.</summary>
        public void Next(OpenStage stage)
        {
            if (_next == _sealed.Length)
            {
                stage.Drain();
                _keypair.ReplayFilter.Reset(); // the same counters again
                _next = 0;
            }
            UdpReceiveBatch buffer = stage.NextBuffer();
            int length = _sealed[_next].Length;
            for (int m = 0; m < Batch / 2; m++)
            {
                buffer.Load(m, _sealed[_next], _sealed[_next + 1]);
                _next += 2;
            }
            for (int m = 0; m < Batch / 2; m++)
            {
                stage.TryAdd(buffer, m, 0, length, GuardedDevice.EndpointB);
                stage.TryAdd(buffer, m, length, length, GuardedDevice.EndpointB);
            }
            stage.Run();
        }
    }

    /// <summary>Two devices with a session, both kept (the receive side needs B's keys).</summary>
    private sealed class Pair : IDisposable, IDeviceIo
    {
        private readonly VirtualClock _clock = new();

        public Pair()
        {
            A = new TunnelDevice(new DeviceOptions { Clock = _clock }, this);
            B = new TunnelDevice(new DeviceOptions { Clock = _clock }, IoB);
            byte[] key = new byte[32];
            Random.Shared.NextBytes(key);
            A.SetPrivateKey(key);
            Random.Shared.NextBytes(key);
            B.SetPrivateKey(key);
            byte[] publicA = new byte[32], publicB = new byte[32];
            A.CopyPublicKey(publicA);
            B.CopyPublicKey(publicB);
            Peer peerB = A.AddPeer(publicB);
            peerB.Endpoint = GuardedDevice.EndpointB;
            A.AllowedIps.Insert(GuardedDevice.AddressB, 32, peerB);
            Peer peerA = B.AddPeer(publicA);
            peerA.Endpoint = GuardedDevice.EndpointA;
            B.AllowedIps.Insert(GuardedDevice.AddressA, 32, peerA);
            IoA.Capture = true;
            IoB.Capture = true;
            A.SendPacket(GuardedDevice.Packet(64));
            for (int round = 0; round < 4; round++)
            {
                foreach (byte[] d in IoA.Captured)
                    B.ReceiveDatagram(d, GuardedDevice.EndpointA);
                IoA.Captured.Clear();
                foreach (byte[] d in IoB.Captured)
                    A.ReceiveDatagram(d, GuardedDevice.EndpointB);
                IoB.Captured.Clear();
            }
            IoA.Capture = false;
            IoB.Capture = false;
            PeerB = peerB;
            if (peerB.Keypairs.Current is null || peerA.Keypairs.Current is not { CanSend: true })
                throw new InvalidOperationException("no session");
        }

        public DiscardingIo IoA { get; } = new();
        public DiscardingIo IoB { get; } = new();
        public TunnelDevice A { get; }
        public TunnelDevice B { get; }
        /// <summary>A's peer for B: its current keypair opens what B sends.</summary>
        public Peer PeerB { get; }
        public long Delivered;

        public long Sent;

        // Called by whichever thread commits a batch (one at a time); read by the benchmark's.
        void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to)
        {
            Interlocked.Increment(ref Sent);
            IoA.SendDatagram(datagram, to); // captures the handshake while the pair is made
        }
        void IDeviceIo.DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from) => Interlocked.Increment(ref Delivered);

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }
}
