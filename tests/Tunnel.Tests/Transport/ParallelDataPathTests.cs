using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Tests.Guard;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>
/// The parallel data path: <see cref="SealStage"/> and <see cref="OpenStage"/> with several
/// <see cref="CryptoWorkers"/>. A peer's packets never change order, the steady state allocates
/// nothing on any thread, and a message sealed before a VM fork never reaches the wire.
/// </summary>
public sealed class ParallelDataPathTests
{
    private const int Workers = 4; // more than this machine's cores: jobs really do finish out of order

    [Fact]
    public void Sealed_by_several_workers_a_peers_messages_leave_in_the_order_they_were_read()
    {
        using var pair = new DevicePair(seed: 130);
        pair.Handshake();
        pair.IoA.TakeSent();
        pair.IoB.TakeSent();
        using var workers = new CryptoWorkers(Workers, NullLogger.Instance);
        workers.Start();
        const int Rounds = 40, PerRound = 64;

        // Both directions at once through one set of workers, as the TUN reader and the UDP
        // receiver share them; sizes vary so that seals take different times.
        void Send(TunnelDevice from, byte[] source, byte[] destination)
        {
            var stage = new SealStage(from, io: null, batch: null, workers);
            for (int round = 0; round < Rounds; round++)
            {
                for (int i = 0; i < PerRound; i++)
                {
                    uint sequence = (uint)(round * PerRound + i);
                    byte[] packet = DevicePair.Packet(source, destination, sequence, 64 + (int)(sequence * 97 % 1357));
                    packet.CopyTo(stage.NextPacket(packet.Length));
                    stage.Add(packet.Length);
                }
                stage.Run(); // batches in flight while the next round is prepared
            }
            stage.Dispose(); // sends what is still in flight
        }
        var other = new Thread(() => Send(pair.B, DevicePair.AddressB, DevicePair.AddressA));
        other.Start();
        Send(pair.A, DevicePair.AddressA, DevicePair.AddressB);
        other.Join();

        foreach ((RecordingIo io, TunnelDevice to, Endpoint from) in new[]
                 {
                     (pair.IoA, pair.B, DevicePair.EndpointA),
                     (pair.IoB, pair.A, DevicePair.EndpointB),
                 })
        {
            List<Datagram> sent = io.TakeSent();
            Assert.Equal(Rounds * PerRound, sent.Count);
            // The wire order is the order the nonces were taken in, which is the read order...
            ulong first = MessageTransport.Counter(sent[0].Bytes);
            Assert.Equal(Enumerable.Range(0, sent.Count).Select(i => first + (ulong)i),
                sent.Select(d => MessageTransport.Counter(d.Bytes)));
            foreach (Datagram datagram in sent)
                to.ReceiveDatagram(datagram.Bytes, from);
        }
        // ... and every packet arrives intact, in that order.
        Assert.Equal(Enumerable.Range(0, Rounds * PerRound).Select(i => (uint?)i), pair.IoB.Delivered.Select(DevicePair.ReadIntact));
        Assert.Equal(Enumerable.Range(0, Rounds * PerRound).Select(i => (uint?)i), pair.IoA.Delivered.Select(DevicePair.ReadIntact));
    }

    [Fact]
    public void Opened_by_several_workers_in_the_receive_buffer_a_peers_packets_are_delivered_in_arrival_order()
    {
        using var pair = new DevicePair(seed: 131);
        pair.Handshake();
        pair.IoA.TakeSent();
        const int Count = 192;
        for (uint i = 0; i < Count; i++)
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, i, 64 + (int)(i * 97 % 1357)));
        List<Datagram> sent = pair.IoA.TakeSent();

        using var workers = new CryptoWorkers(Workers, NullLogger.Instance);
        workers.Start();
        using var stage = new OpenStage(pair.B, workers);
        using var bind = UdpBind.Open(0);
        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            var to = new IPEndPoint(IPAddress.Loopback, bind.Port);
            foreach (Datagram datagram in sent)
                socket.SendTo(datagram.Bytes, to);
        }
        int received = 0;
        while (received < Count)
        {
            UdpReceiveBatch batch = stage.NextBuffer();
            int count = bind.ReceiveBatch(batch);
            Assert.True(count > 0);
            for (int i = 0; i < count; i++)
            {
                Span<byte> data = batch.Data(i);
                for (int offset = 0; offset < data.Length; offset += batch.SegmentSize(i))
                {
                    int length = Math.Min(batch.SegmentSize(i), data.Length - offset);
                    Assert.True(stage.TryAdd(batch, i, offset, length, DevicePair.EndpointA));
                    received++;
                }
            }
            stage.Run();
            stage.Drain();
            // Opened in place, and cleared there once delivered.
            for (int i = 0; i < count; i++)
            {
                Span<byte> data = batch.Data(i);
                for (int offset = 0; offset < data.Length; offset += batch.SegmentSize(i))
                {
                    Span<byte> datagram = data.Slice(offset, Math.Min(batch.SegmentSize(i), data.Length - offset));
                    Assert.True(datagram[MessageTransport.ContentOffset..^MessageTransport.TagSize].IndexOfAnyExcept((byte)0) < 0,
                        "plaintext left in the receive buffer");
                }
            }
        }
        Assert.Equal(Enumerable.Range(0, Count).Select(i => (uint?)i), pair.IoB.Delivered.Select(DevicePair.ReadIntact));
    }

    [Fact]
    public void Sealing_with_workers_allocates_nothing_per_packet_on_any_thread()
    {
        using var pair = new RingPair();
        using var workers = new CryptoWorkers(2, NullLogger.Instance);
        workers.Start();
        var stage = new SealStage(pair.A, io: null, batch: null, workers);
        byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 1280);
        pair.AToB(packet); // the handshake
        void Round()
        {
            for (int i = 0; i < 32; i++)
            {
                packet.CopyTo(stage.NextPacket(packet.Length));
                stage.Add(packet.Length);
            }
            stage.Drain();
            pair.IoA.DrainTo(pair.B, DevicePair.EndpointA);
            pair.IoB.DrainTo(pair.A, DevicePair.EndpointB);
        }
        for (int i = 0; i < 500; i++)
            Round();
        // As AllocationProbe does for this thread: the least of a few windows, so a one-time
        // runtime allocation on a worker (a tier-up, its first wait) is not counted as per-packet.
        long here = long.MaxValue, onWorkers = long.MaxValue;
        for (int window = 0; window < 4; window++)
        {
            Thread.Sleep(50); // the workers publish their totals after each batch
            long workersBefore = workers.AllocatedBytes;
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 500; i++)
                Round();
            here = Math.Min(here, GC.GetAllocatedBytesForCurrentThread() - before);
            Thread.Sleep(50);
            onWorkers = Math.Min(onWorkers, workers.AllocatedBytes - workersBefore);
        }
        Assert.Equal(0, here);
        Assert.Equal(0, onWorkers);
        Assert.Equal(1 + 5 * 500 * 32, pair.IoB.Delivered);
    }

    [Fact]
    public void A_fork_between_sealing_and_the_write_drops_every_sealed_message_as_stale()
    {
        using var guarded = new GuardedPair(ForkGuardMode.HotPath, seed: 132);
        guarded.Pair.Handshake();
        guarded.Pair.IoA.TakeSent();
        using var workers = new CryptoWorkers(Workers, NullLogger.Instance);
        workers.Start();
        var stage = new SealStage(guarded.A, io: null, batch: null, workers);
        const int Count = 24;
        for (uint i = 0; i < Count; i++)
        {
            byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, i, 1000);
            packet.CopyTo(stage.NextPacket(packet.Length));
            stage.Add(packet.Length);
        }
        Keypair keypair = guarded.PeerB.Keypairs.Current!;
        // Nonces are taken and nothing read the counter yet: the first read is the first commit's
        // hot-path check, after every message was sealed. The snapshot falls just before it.
        guarded.Counter.MoveAtNextRead();
        stage.Run();
        stage.Drain();

        Assert.DoesNotContain(guarded.Pair.IoA.Sent, d => d.Type == MessageType.Transport);
        Assert.Equal(Count, guarded.A.Fork.StaleKeyDrops);
        Assert.False(keypair.CanSend);
        Assert.Equal(Count, (long)keypair.SendNonce - 1); // they were sealed (nonces 1..24 taken), then dropped
    }

    /// <summary><paramref name="count"/> packets of <paramref name="length"/> bytes, sequence numbers from <paramref name="first"/>, into the stage.</summary>
    private static void Fill(SealStage stage, uint first, int count, int length = 600)
    {
        for (uint i = first; i < first + count; i++)
        {
            byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, i, length);
            packet.CopyTo(stage.NextPacket(packet.Length));
            stage.Add(packet.Length);
        }
    }

    private static List<ulong> TransportCounters(List<Datagram> sent) =>
        sent.Where(d => d.Type == MessageType.Transport).Select(d => MessageTransport.Counter(d.Bytes)).ToList();

    [Fact]
    public void The_reader_hands_a_batch_on_and_prepares_the_next_while_it_is_in_flight()
    {
        using var pair = new DevicePair(seed: 133);
        pair.Handshake();
        pair.IoA.TakeSent();
        // Workers that never run: every job is the reader's own help, so what it leaves in flight is exact.
        using var workers = new CryptoWorkers(2, NullLogger.Instance);
        using var stage = new SealStage(pair.A, io: null, batch: null, workers);
        const int Batches = 6, PerBatch = 8;
        var sent = new List<Datagram>();
        for (int b = 0; b < Batches; b++)
        {
            Fill(stage, (uint)(b * PerBatch), PerBatch);
            stage.Run();
            // The newest batch is left to the workers; the one before it was sealed and sent by
            // the reader's help before it returned to read.
            Assert.Equal(1, stage.InFlight);
            sent.AddRange(pair.IoA.TakeSent());
            Assert.Equal(b * PerBatch, sent.Count);
        }
        stage.Drain();
        Assert.Equal(0, stage.InFlight);
        sent.AddRange(pair.IoA.TakeSent());
        ulong first = MessageTransport.Counter(sent[0].Bytes);
        Assert.Equal(Enumerable.Range(0, Batches * PerBatch).Select(i => first + (ulong)i), TransportCounters(sent));
        foreach (Datagram datagram in sent)
            pair.B.ReceiveDatagram(datagram.Bytes, DevicePair.EndpointA);
        Assert.Equal(Enumerable.Range(0, Batches * PerBatch).Select(i => (uint?)i), pair.IoB.Delivered.Select(DevicePair.ReadIntact));
    }

    [Fact]
    public void A_fork_while_batches_are_in_flight_drops_every_message_not_yet_on_the_wire()
    {
        using var guarded = new GuardedPair(ForkGuardMode.HotPath, seed: 134);
        guarded.Pair.Handshake();
        guarded.Pair.IoA.TakeSent();
        using var workers = new CryptoWorkers(2, NullLogger.Instance); // not started: see above
        using var stage = new SealStage(guarded.A, io: null, batch: null, workers);
        Keypair keypair = guarded.PeerB.Keypairs.Current!;
        const int PerBatch = 8;
        for (uint b = 0; b < 3; b++)
        {
            Fill(stage, b * PerBatch, PerBatch);
            stage.Run();
        }
        List<ulong> before = TransportCounters(guarded.Pair.IoA.TakeSent());
        Assert.Equal(2 * PerBatch, before.Count); // batch 3 is in flight, sealed or not
        guarded.MoveCounter(); // the snapshot: nothing was notified, only the pull counter moved
        Fill(stage, 3 * PerBatch, PerBatch); // prepared under the old keypair too: nothing read the counter yet
        stage.Run();
        stage.Drain();

        Assert.Empty(TransportCounters(guarded.Pair.IoA.Sent));
        Assert.True(guarded.A.Fork.StaleKeyDrops >= 1);
        Assert.False(keypair.CanSend); // the rekey waits for the reseed, which MoveCounter does not give
    }

    [Fact]
    public void Stopping_with_batches_in_flight_neither_hangs_nor_loses_what_was_read()
    {
        using var pair = new DevicePair(seed: 135);
        pair.Handshake();
        pair.IoA.TakeSent();
        var workers = new CryptoWorkers(Workers, NullLogger.Instance);
        workers.Start();
        var stage = new SealStage(pair.A, io: null, batch: null, workers);
        const int Batches = 40, PerBatch = 16;
        for (int b = 0; b < Batches; b++)
        {
            Fill(stage, (uint)(b * PerBatch), PerBatch, length: 1200);
            stage.Run();
        }
        // The workers stop first (the worst order), and one more read comes after: it is left in
        // flight for workers that are gone, so only the reader's own drain can send it.
        var stop = Task.Run(() =>
        {
            workers.Dispose();
            Fill(stage, Batches * PerBatch, PerBatch, length: 1200);
            stage.Run();
            Assert.Equal(1, stage.InFlight);
            stage.Dispose();
        });
        Assert.True(stop.Wait(TimeSpan.FromSeconds(60)), "stopping hung with batches in flight");
        stop.GetAwaiter().GetResult(); // its assertion, if it failed
        Assert.Equal(0, stage.InFlight);
        Assert.Equal(0, stage.Failures);
        List<Datagram> sent = pair.IoA.TakeSent();
        ulong first = MessageTransport.Counter(sent[0].Bytes);
        Assert.Equal(Enumerable.Range(0, (Batches + 1) * PerBatch).Select(i => first + (ulong)i), TransportCounters(sent));
    }

    [Fact]
    public void The_receiver_reads_into_the_next_buffer_while_the_last_read_is_opened_and_delivers_in_order()
    {
        using var pair = new DevicePair(seed: 136);
        pair.Handshake();
        pair.IoA.TakeSent();
        const int Reads = 5, PerRead = 8;
        using var workers = new CryptoWorkers(2, NullLogger.Instance); // not started: the receiver's help alone
        using var stage = new OpenStage(pair.B, workers);
        using var bind = UdpBind.Open(0);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        var to = new IPEndPoint(IPAddress.Loopback, bind.Port);
        var buffers = new HashSet<UdpReceiveBatch>(ReferenceEqualityComparer.Instance);
        for (int read = 0; read < Reads; read++)
        {
            for (int i = 0; i < PerRead; i++)
                pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, (uint)(read * PerRead + i), 100 + (i * 131)));
            foreach (Datagram datagram in pair.IoA.TakeSent())
                socket.SendTo(datagram.Bytes, to);
            for (int added = 0; added < PerRead;)
            {
                UdpReceiveBatch batch = stage.NextBuffer(); // a short read: the rest in the next buffer
                buffers.Add(batch);
                int count = bind.ReceiveBatch(batch);
                Assert.True(count > 0);
                for (int i = 0; i < count; i++)
                {
                    Assert.Equal(batch.Data(i).Length, batch.SegmentSize(i)); // sizes differ: no GRO run
                    Assert.True(stage.TryAdd(batch, i, 0, batch.Data(i).Length, DevicePair.EndpointA));
                    added++;
                }
                stage.Run();
                Assert.Equal(1, stage.InFlight); // the read just taken apart is still being opened
            }
        }
        Assert.True(buffers.Count > 1, "every read went into one buffer");
        stage.Drain();
        Assert.Equal(Enumerable.Range(0, Reads * PerRead).Select(i => (uint?)i), pair.IoB.Delivered.Select(DevicePair.ReadIntact));
    }
}
