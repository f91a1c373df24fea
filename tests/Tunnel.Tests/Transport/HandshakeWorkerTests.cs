using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>
/// Handshakes off the data path, on the engine in virtual time: the receive side's dispatch is
/// UdpReceiver's (handshake messages to <see cref="HandshakeWorker.Admit"/>, the rest inline), the
/// flood is initiations with a valid mac1 and random content, as bench/flood.sh sends.
/// </summary>
public sealed class HandshakeWorkerTests
{
    private static readonly Endpoint Flooder = DevicePair.Parse("198.51.100.9:40000");

    /// <summary>As UdpReceiver.Receive: handshakes to the worker's admission, the rest to the engine.</summary>
    private static void Receive(TunnelDevice device, HandshakeWorker worker, ReadOnlySpan<byte> datagram, in Endpoint from)
    {
        if (TunnelDevice.IsHandshakeMessage(datagram))
            worker.Admit(datagram, from);
        else
            device.ReceiveDatagram(datagram, from);
    }

    private static byte[] FloodInitiation(Random random, byte[] responderPublic)
    {
        var message = new byte[MessageInitiation.Size];
        random.NextBytes(message);
        MessageHeader.WriteType(message, MessageType.Initiation);
        new CookieGenerator(new PublicKey(responderPublic)).AddMacs(message, TimeSpan.Zero);
        return message;
    }

    [Fact]
    public void Under_a_flood_every_data_packet_is_delivered_and_the_backlog_turns_cookie_mode_on()
    {
        using var pair = new DevicePair(seed: 13);
        pair.Handshake();
        var queue = new HandshakeQueue();
        using var threads = new DataPathThreads(NullLogger.Instance);
        var worker = new HandshakeWorker(pair.B, queue, threads, NullLogger.Instance); // not running: the queue only fills
        var random = new Random(13);
        const int Flood = 2000, DataEvery = 10;
        int dataSent = 0;
        for (int i = 0; i < Flood; i++)
        {
            Receive(pair.B, worker, FloodInitiation(random, pair.PublicB), Flooder);
            if (i % DataEvery != 0)
                continue;
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, (uint)dataSent++, 200));
            foreach (Datagram d in pair.IoA.TakeSent())
                Receive(pair.B, worker, d.Bytes, DevicePair.EndpointA);
        }

        // Data went around the queue: all of it arrived, in order.
        Assert.Equal(Enumerable.Range(0, dataSent).Select(i => (uint?)i), pair.IoB.Delivered.Select(DevicePair.ReadIntact));
        // At 1/8 of the queue the device went under load (well below the 512/s rate trigger):
        // from then on the flood earned cookie replies instead of places in the queue.
        Assert.Equal(HandshakeQueue.BackloggedDepth, queue.Count);
        List<Datagram> replies = pair.IoB.TakeSent();
        Assert.Equal(Flood - HandshakeQueue.BackloggedDepth, replies.Count(d => d.Type == MessageType.CookieReply && d.To == Flooder));
        Assert.Equal(0, queue.Dropped);

        // The worker's half changes no session: random content fails before any state is touched.
        Keypair? session = pair.PeerA.Keypairs.Current;
        var into = new byte[HandshakeQueue.SlotSize];
        while (queue.TryDequeue(into, out int length, out Endpoint from, 0))
            pair.B.ReceiveHandshake(into.AsSpan(0, length), from);
        Assert.Same(session, pair.PeerA.Keypairs.Current);
        Assert.Empty(pair.IoB.Sent);
    }

    [Fact]
    public void Under_load_a_new_peer_completes_its_handshake_through_the_cookie_reply()
    {
        using var pair = new DevicePair(seed: 14);
        var queue = new HandshakeQueue();
        using var threads = new DataPathThreads(NullLogger.Instance);
        var worker = new HandshakeWorker(pair.B, queue, threads, NullLogger.Instance);
        var random = new Random(14);
        for (int i = 0; i < 2 * HandshakeQueue.BackloggedDepth; i++)
            Receive(pair.B, worker, FloodInitiation(random, pair.PublicB), Flooder);
        pair.IoB.TakeSent();
        Assert.True(queue.Backlogged);

        // A's first initiation only earns a cookie reply: B is under load and A has no cookie yet.
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0, 100));
        Datagram first = Assert.Single(pair.IoA.TakeSent());
        Assert.Equal(MessageType.Initiation, first.Type);
        Receive(pair.B, worker, first.Bytes, DevicePair.EndpointA);
        Datagram cookie = Assert.Single(pair.IoB.TakeSent());
        Assert.Equal(MessageType.CookieReply, cookie.Type);
        Assert.Equal(HandshakeQueue.BackloggedDepth, queue.Count);
        pair.A.ReceiveDatagram(cookie.Bytes, DevicePair.EndpointB);

        // A retries after REKEY_TIMEOUT, now with mac2: past the checks, into the queue.
        pair.Advance(TimeSpan.FromSeconds(6), pump: false);
        Datagram retry = Assert.Single(pair.IoA.TakeSent(), d => d.Type == MessageType.Initiation);
        Receive(pair.B, worker, retry.Bytes, DevicePair.EndpointA);
        Assert.Empty(pair.IoB.Sent);
        Assert.Equal(HandshakeQueue.BackloggedDepth + 1, queue.Count);

        // The worker thread works through the flood and answers A.
        threads.Start(worker.Run, "handshake");
        var deadline = DateTime.UtcNow.AddSeconds(60); // a liveness bound, not a speed check
        while (queue.Count > 0 && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        threads.Stop();
        queue.Close();
        threads.Join();
        Assert.Equal(0, queue.Count);
        Assert.Equal(0, worker.Failures);
        Datagram response = Assert.Single(pair.IoB.TakeSent());
        Assert.Equal(MessageType.Response, response.Type);
        pair.A.ReceiveDatagram(response.Bytes, DevicePair.EndpointB);
        Assert.NotNull(pair.PeerB.Keypairs.Current);
        foreach (Datagram d in pair.IoA.TakeSent()) // the staged packet confirms the session to B
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);
        Assert.NotNull(pair.PeerA.Keypairs.Current);
        Assert.Single(pair.IoB.Delivered);
    }
}
