using System.Net;
using System.Net.Sockets;
using ForkNotify;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Device;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>
/// The batched UDP path on loopback: datagrams collected by <see cref="UdpSendBatch"/> leave as
/// one GSO send and come back through recvmmsg/GRO (<see cref="UdpBind.ReceiveBatch"/>) as the
/// same datagrams in the same order; a batch held across a VM generation change is dropped.
/// </summary>
public sealed class UdpBatchTests
{
    private sealed class Counter : IGenerationCounter
    {
        public ulong Value;
        public ulong Read() => Volatile.Read(ref Value);
    }

    private static byte[] Datagram(int index, int length)
    {
        var bytes = new byte[length];
        new Random(index).NextBytes(bytes);
        return bytes;
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void ARunLeavesAsOneGsoSendAndArrivesAsTheSameDatagramsInOrder(string loopback)
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var io = new InterfaceIo(null!, sender, NullLogger.Instance);
        var to = new Endpoint(IPAddress.Parse(loopback).GetAddressBytes(), receiver.Port);
        var sent = new List<byte[]>();
        for (var i = 0; i < 5; i++)
            sent.Add(Datagram(i, 1000));
        sent.Add(Datagram(5, 300)); // the shorter last one closes the run
        sent.Add(Datagram(6, 1000)); // and this one goes in a send of its own
        var batch = new UdpSendBatch();
        foreach (var datagram in sent)
            batch.Add(io, datagram, to, 0);
        batch.Flush(io);

        using var received = new UdpReceiveBatch();
        var got = new List<byte[]>();
        while (got.Count < sent.Count)
        {
            var count = receiver.ReceiveBatch(received);
            Assert.True(count > 0);
            for (var i = 0; i < count; i++)
            {
                var data = received.Data(i).ToArray();
                Assert.True(EndpointAddress.TryRead(received.Source(i), out var from));
                Assert.Equal(sender.Port, from.Port);
                var size = received.SegmentSize(i);
                for (var offset = 0; offset < data.Length; offset += size)
                    got.Add(data[offset..Math.Min(offset + size, data.Length)]);
            }
        }
        Assert.Equal(sent, got);
    }

    [Fact]
    public void DatagramsBackToBackInLentMemoryAreSentFromThereAndEverythingElseInOrder()
    {
        using var sender = UdpBind.Open(0);
        using var receiver = UdpBind.Open(0);
        var io = new InterfaceIo(null!, sender, NullLogger.Instance);
        var to = new Endpoint(IPAddress.Loopback.GetAddressBytes(), receiver.Port);
        var arena = new byte[8000];
        var batch = new UdpSendBatch();
        batch.Lend(arena);
        var sent = new List<byte[]>();
        void AddFromArena(int offset, int index)
        {
            var datagram = Datagram(index, 1000);
            datagram.CopyTo(arena, offset);
            batch.Add(io, arena.AsSpan(offset, 1000), to, 0);
            sent.Add(datagram);
        }
        AddFromArena(0, 0);
        AddFromArena(1000, 1);
        AddFromArena(2000, 2);
        AddFromArena(4000, 3); // a gap: the run so far leaves first
        AddFromArena(5000, 4);
        // Held where it lies, not copied: a change made now is what leaves.
        arena[5000] ^= 0xff;
        sent[4][0] ^= 0xff;
        var outside = Datagram(5, 1000);
        batch.Add(io, outside, to, 0); // not in the lent memory: the run leaves, this is copied
        sent.Add(outside);
        batch.Flush(io);

        using var received = new UdpReceiveBatch();
        var got = new List<byte[]>();
        while (got.Count < sent.Count)
        {
            var count = receiver.ReceiveBatch(received);
            Assert.True(count > 0);
            for (var i = 0; i < count; i++)
            {
                var data = received.Data(i).ToArray();
                var size = received.SegmentSize(i);
                for (var offset = 0; offset < data.Length; offset += size)
                    got.Add(data[offset..Math.Min(offset + size, data.Length)]);
            }
        }
        Assert.Equal(sent, got);
    }

    [Fact]
    public void ABatchHeldAcrossAGenerationChangeIsDropped()
    {
        using var sender = UdpBind.Open(0);
        using var receiver = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        receiver.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        receiver.ReceiveTimeout = 10_000;
        var io = new InterfaceIo(null!, sender, NullLogger.Instance);
        var counter = new Counter { Value = 7 };
        using var device = new TunnelDevice(new DeviceOptions(), io) { Fork = { Counter = counter } };
        io.Device = device;
        var to = new Endpoint(IPAddress.Loopback.GetAddressBytes(), ((IPEndPoint)receiver.LocalEndPoint!).Port);

        var batch = new UdpSendBatch();
        batch.Add(io, Datagram(1, 500), to, 7);
        batch.Add(io, Datagram(2, 500), to, 7);
        counter.Value = 8; // cloned while they waited
        batch.Flush(io);
        Assert.Equal(2, io.StaleBatchDrops);

        // Same generation from start to send: it goes out; it is the first thing to arrive.
        var marker = Datagram(3, 100);
        batch.Add(io, marker, to, 8);
        batch.Flush(io);
        var buffer = new byte[2000];
        var n = receiver.Receive(buffer);
        Assert.Equal(marker, buffer[..n]);
        Assert.Equal(2, io.StaleBatchDrops);
    }

    [Fact]
    public void ADatagramValidatedBeforeASnapshotAndHeldAfterItIsDropped()
    {
        // The engine checked generation 7; the snapshot fell between its check and the batch, so the
        // batch first sees the clone's 8. It must compare with 7, not take 8 as its start.
        using var sender = UdpBind.Open(0);
        var io = new InterfaceIo(null!, sender, NullLogger.Instance);
        var counter = new Counter { Value = 8 };
        using var device = new TunnelDevice(new DeviceOptions(), io) { Fork = { Counter = counter } };
        io.Device = device;
        var to = new Endpoint(IPAddress.Loopback.GetAddressBytes(), 9);

        InterfaceIo.BeginBatch(new UdpSendBatch());
        try
        {
            io.SendDatagram(Datagram(1, 500), to, generation: 7);
            io.FlushBatch();
        }
        finally
        {
            InterfaceIo.BeginBatch(null!); // the batch is per thread: leave none behind
        }

        Assert.Equal(1, io.StaleBatchDrops);
    }
}
