using System.Collections.Concurrent;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>Several threads send, receive and tick at once, as the daemon drives the device.</summary>
public sealed class DeviceConcurrencyTests
{
    private sealed class QueueIo : IDeviceIo
    {
        public ConcurrentQueue<byte[]> Wire { get; } = new();
        public ConcurrentBag<byte[]> Delivered { get; } = [];
        public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to) => Wire.Enqueue(datagram.ToArray());
        public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from) => Delivered.Add(ipPacket.ToArray());
    }

    private static TunnelDevice NewDevice(VirtualClock clock, IDeviceIo io) =>
        new(new DeviceOptions { Clock = clock, Random = ForkNotify.OsRandomGenerator.Instance }, io);

    /// <summary>Random keys; each device the other's peer; A knows B's endpoint. Returns (A's peer B, B's peer A).</summary>
    private static (Peer PeerB, Peer PeerA) Connect(TunnelDevice a, TunnelDevice b)
    {
        byte[] key = new byte[32];
        byte[] pub = new byte[32];
        Random.Shared.NextBytes(key);
        a.SetPrivateKey(key);
        Random.Shared.NextBytes(key);
        b.SetPrivateKey(key);
        b.CopyPublicKey(pub);
        Peer peerB = a.AddPeer(pub);
        a.CopyPublicKey(pub);
        Peer peerA = b.AddPeer(pub);
        peerB.Endpoint = DevicePair.EndpointB;
        a.AllowedIps.Insert(DevicePair.AddressB, 32, peerB);
        b.AllowedIps.Insert(DevicePair.AddressA, 32, peerA);
        return (peerB, peerA);
    }

    /// <summary>
    /// Issue 13: the send path reads the endpoint without the peer lock. A reader racing a writer
    /// that flips between two endpoints differing in every byte must always see one of them whole
    /// (an Endpoint is 56 bytes: a plain unlocked copy tears).
    /// </summary>
    [Fact]
    public void The_send_path_never_sees_a_torn_endpoint_while_it_roams()
    {
        using var device = NewDevice(new VirtualClock(), new QueueIo());
        byte[] key = new byte[32];
        Random.Shared.NextBytes(key);
        Peer peer = device.AddPeer(key);
        Endpoint one = new Endpoint([10, 0, 0, 1], 1111).WithSource([10, 0, 0, 2], 3);
        Endpoint two = new Endpoint(
            [0xfd, 0x99, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], 2222, scopeId: 7)
            .WithSource([0xfd, 0x98, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15], 9);
        peer.Endpoint = one;

        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
                peer.Endpoint = (i & 1) == 0 ? two : one;
        });
        int torn = 0, seenOne = 0, seenTwo = 0;
        var until = DateTime.UtcNow.AddMilliseconds(500);
        while (DateTime.UtcNow < until || seenOne == 0 || seenTwo == 0)
        {
            for (int i = 0; i < 10_000; i++)
            {
                Assert.True(peer.TryGetEndpoint(out Endpoint read));
                bool isOne = read == one && read.SameSource(one);
                bool isTwo = read == two && read.SameSource(two);
                if (isOne) seenOne++;
                else if (isTwo) seenTwo++;
                else torn++;
            }
            if (DateTime.UtcNow > until.AddSeconds(10))
                break;
        }
        stop.Cancel();
        writer.Wait();
        Assert.Equal(0, torn);
        Assert.True(seenOne > 0 && seenTwo > 0, $"the reader saw both endpoints ({seenOne}, {seenTwo})");
    }

    [Fact]
    public async Task Concurrent_senders_receivers_and_ticks_deliver_every_packet_once()
    {
        const int PerThread = 5_000;
        var clock = new VirtualClock();
        var ioA = new QueueIo();
        var ioB = new QueueIo();
        using var a = NewDevice(clock, ioA);
        using var b = NewDevice(clock, ioB);
        (Peer peerB, Peer peerA) = Connect(a, b);

        using var stop = new CancellationTokenSource();
        void Drain(QueueIo from, TunnelDevice to, Endpoint source)
        {
            while (!stop.IsCancellationRequested)
            {
                if (from.Wire.TryDequeue(out byte[]? d))
                    to.ReceiveDatagram(d, source);
                else
                    Thread.Yield();
            }
        }

        var drainers = new[]
        {
            Task.Run(() => Drain(ioA, b, DevicePair.EndpointA), TestContext.Current.CancellationToken),
            Task.Run(() => Drain(ioA, b, DevicePair.EndpointA), TestContext.Current.CancellationToken),
            Task.Run(() => Drain(ioB, a, DevicePair.EndpointB), TestContext.Current.CancellationToken),
            Task.Run(() => Drain(ioB, a, DevicePair.EndpointB), TestContext.Current.CancellationToken),
            Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    a.Tick();
                    b.Tick();
                    Thread.Yield();
                }
            }, TestContext.Current.CancellationToken),
        };

        // The handshake first (staged packets are bounded; this test is about the data path).
        a.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, uint.MaxValue, 64));
        SpinWait.SpinUntil(() => peerA.Keypairs.Current is not null, TimeSpan.FromSeconds(30));
        Assert.NotNull(peerA.Keypairs.Current);

        var senders = Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (int i = 0; i < PerThread; i++)
            {
                uint seq = (uint)(t * PerThread + i);
                if (t % 2 == 0)
                    a.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, seq, 100));
                else
                    b.SendPacket(DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, seq, 100));
            }
        }, TestContext.Current.CancellationToken)).ToArray();
        await Task.WhenAll(senders);
        SpinWait.SpinUntil(() => ioA.Wire.IsEmpty && ioB.Wire.IsEmpty && ioB.Delivered.Count >= 2 * PerThread + 1
            && ioA.Delivered.Count >= 2 * PerThread, TimeSpan.FromSeconds(30));
        stop.Cancel();
        await Task.WhenAll(drainers);

        var toB = ioB.Delivered.Select(DevicePair.ReadIntact).ToList();
        var toA = ioA.Delivered.Select(DevicePair.ReadIntact).ToList();
        Assert.DoesNotContain(null, toB);
        Assert.DoesNotContain(null, toA);
        Assert.Equal(2 * PerThread + 1, toB.Distinct().Count());
        Assert.Equal(2 * PerThread + 1, toB.Count);
        Assert.Equal(2 * PerThread, toA.Distinct().Count());
        Assert.Equal(2 * PerThread, toA.Count);
    }

    [Fact]
    public async Task Sessions_cleared_under_concurrent_senders_never_put_a_badly_sealed_packet_on_the_wire()
    {
        // The engine-level stress of the keypair hand-off (Rcu): A's senders seal while this
        // thread clears A's sessions and handshakes again. Every transport message A puts on the
        // wire must open under the key its keypair was made with, and every retired keypair ends
        // zeroed. (Without the hand-off, x86 still shows nothing bad on the wire: its stores stay
        // in order, so the stage-2 IsZeroed check catches a packet sealed during zeroing; the
        // negative control is in KeypairRcuTests.)
        var clock = new VirtualClock();
        var ioA = new QueueIo();
        var ioB = new QueueIo();
        var sentByA = new ConcurrentQueue<byte[]>();
        using var a = NewDevice(clock, ioA);
        using var b = NewDevice(clock, ioB);
        (Peer peerB, _) = Connect(a, b);

        using var stop = new CancellationTokenSource();
        var workers = new[]
        {
            Task.Run(() =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (ioA.Wire.TryDequeue(out byte[]? d))
                    {
                        sentByA.Enqueue(d);
                        b.ReceiveDatagram(d, DevicePair.EndpointA);
                    }
                    else if (ioB.Wire.TryDequeue(out d))
                        a.ReceiveDatagram(d, DevicePair.EndpointB);
                    else
                        Thread.Yield();
                }
            }, TestContext.Current.CancellationToken),
            Task.Run(() =>
            {
                byte[] packet = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 200);
                while (!stop.IsCancellationRequested)
                    a.SendPacket(packet);
            }, TestContext.Current.CancellationToken),
        };

        var sessions = new List<(Keypair Keypair, byte[] SendKey)>();
        for (int round = 0; round < 40; round++)
        {
            peerB.ResetLastSentHandshake();
            a.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0, 64));
            Keypair? current = null;
            SpinWait.SpinUntil(() => (current = peerB.Keypairs.Current) is { IsZeroed: false }, TimeSpan.FromSeconds(10));
            Assert.NotNull(current);
            sessions.Add((current!, current!.SendKey.ToArray())); // only this thread retires it
            // Let the sender seal under it a while (loose: a loaded machine may be slow).
            SpinWait.SpinUntil(() => current!.SendNonce >= 20, TimeSpan.FromSeconds(10));
            peerB.ClearSessions();
            clock.Advance(TimeSpan.FromMilliseconds(100)); // past the responder's flood limit
        }
        stop.Cancel();
        await Task.WhenAll(workers);
        while (ioA.Wire.TryDequeue(out byte[]? rest))
            sentByA.Enqueue(rest);

        int checkedMessages = 0;
        byte[] opened = new byte[2048];
        byte[] nonce = new byte[12];
        foreach (byte[] d in sentByA)
        {
            if (MessageHeader.ReadType(d) != MessageType.Transport)
                continue;
            uint receiver = MessageTransport.ReceiverIndex(d);
            (Keypair Keypair, byte[] SendKey) session = sessions.Single(s => s.Keypair.RemoteIndex == receiver);
            Peer.WriteNonce(nonce, MessageTransport.Counter(d));
            Assert.True(Tunnel.Crypto.TransportAead.Open(opened.AsSpan(0, d.Length - MessageTransport.MinimumSize),
                d.AsSpan(MessageTransport.ContentOffset), nonce, session.SendKey), "a packet sealed under a zeroed key left");
            checkedMessages++;
        }
        Assert.True(checkedMessages >= 10 * sessions.Count, $"only {checkedMessages} transport messages");
        Assert.True(a.Rcu.Barrier(TimeSpan.FromSeconds(5)));
        Assert.All(sessions, s => Assert.True(s.Keypair.KeysZeroed && s.Keypair.SendKey.IndexOfAnyExcept((byte)0) < 0));
    }
}
