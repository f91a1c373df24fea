using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Device;
using Tunnel.Transport;

namespace Tunnel.Bench;

/// <summary>
/// The in-process pipeline with 1 and 2 crypto workers (issue 13): packets per second through
/// <see cref="SealStage"/> (prepare in order, seal on the workers, commit in order: the TUN
/// reader's path without the TUN read and the socket write) and through the receive side's three
/// steps (prepare, open in place on the workers, commit: replay window, the peer, delivery, as
/// <see cref="OpenStage"/> does without the recvmmsg), in batches of 64 packets (a TSO read's
/// segments, a recvmmsg's datagrams). The devices' IDeviceIo discards. Not a BenchmarkDotNet run:
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
        return 0;
    }

    private static double Seal(int size, int workerCount, double seconds)
    {
        using var pair = new Pair();
        using var workers = new CryptoWorkers(workerCount, NullLogger.Instance);
        workers.Start();
        var stage = new SealStage(pair.A, io: null, batch: null, workers);
        byte[] packet = GuardedDevice.Packet(size);
        return Measure(seconds, () =>
        {
            for (int i = 0; i < Batch; i++)
            {
                packet.CopyTo(stage.NextPacket(packet.Length));
                stage.Add(packet.Length);
            }
            stage.Run();
        }, () => pair.IoA.Sent);
    }

    private static double Open(int size, int workerCount, double seconds)
    {
        using var pair = new Pair();
        using var workers = new CryptoWorkers(workerCount, NullLogger.Instance);
        workers.Start();
        var jobs = new OpenJobs(pair, size);
        CryptoRound? round = workerCount > 1 ? workers.Register(jobs) : null;
        return Measure(seconds, () => jobs.RunBatch(workers, round), () => jobs.Delivered);
    }

    private static double Measure(double seconds, Action batch, Func<long> count)
    {
        var warm = Stopwatch.StartNew();
        while (warm.Elapsed.TotalSeconds < 0.5)
            batch();
        long before = count();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
            batch();
        return (count() - before) / clock.Elapsed.TotalSeconds;
    }

    /// <summary>The receive side's three steps over 64 messages B sealed once, copied back into
    /// place before each batch (as recvmmsg would write them), the replay window reset after.</summary>
    private sealed class OpenJobs : ICryptoJobs
    {
        private readonly Pair _pair;
        private readonly byte[][] _sealed = new byte[Batch][];
        private readonly byte[][] _buffers = new byte[Batch][];
        private readonly InboundTransport[] _jobs = new InboundTransport[Batch];
        private readonly Keypair _keypair;

        public OpenJobs(Pair pair, int size)
        {
            _pair = pair;
            byte[] packet = GuardedDevice.Packet(size);
            (packet[12], packet[13], packet[14], packet[15]) = (10, 9, 0, 2); // from B
            (packet[16], packet[17], packet[18], packet[19]) = (10, 9, 0, 1); // to A
            pair.IoB.Capture = true;
            for (int i = 0; i < Batch; i++)
                pair.B.SendPacket(packet);
            pair.IoB.Capture = false;
            for (int i = 0; i < Batch; i++)
            {
                _sealed[i] = pair.IoB.Captured[i];
                _buffers[i] = new byte[_sealed[i].Length];
            }
            _keypair = pair.PeerB.Keypairs.Current!;
        }

        public long Delivered => _pair.Delivered;

        public void RunBatch(CryptoWorkers workers, CryptoRound? round)
        {
            for (int i = 0; i < Batch; i++)
            {
                _sealed[i].CopyTo(_buffers[i], 0);
                _pair.A.PrepareReceive(_buffers[i], out _jobs[i]);
            }
            if (round is null)
            {
                for (int i = 0; i < Batch; i++)
                    RunJob(i);
            }
            else
            {
                workers.Run(round, Batch);
            }
            for (int i = 0; i < Batch; i++)
                _pair.A.CommitReceive(_jobs[i], _buffers[i], GuardedDevice.EndpointB);
            _keypair.ReplayFilter.Reset(); // the same 64 counters again next batch
        }

        public void RunJob(int index) => _pair.A.OpenTransport(ref _jobs[index], _buffers[index]);
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

        void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to) => IoA.SendDatagram(datagram, to);
        void IDeviceIo.DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from) => Delivered++;

        public void Dispose()
        {
            A.Dispose();
            B.Dispose();
        }
    }
}
