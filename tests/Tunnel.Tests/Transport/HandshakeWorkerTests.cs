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

    /// <summary>A spoofed source: a random address in 198.18.0.0/15 and a random port.</summary>
    private static Endpoint SpoofedSource(Random random) =>
        new([198, (byte)(18 + random.Next(2)), (byte)random.Next(256), (byte)random.Next(256)], random.Next(1024, 65536));

    private static byte[] FloodInitiation(Random random, byte[] responderPublic)
    {
        var message = new byte[MessageInitiation.Size];
        random.NextBytes(message);
        MessageHeader.WriteType(message, MessageType.Initiation);
        new CookieGenerator(new PublicKey(responderPublic)).AddMacs(message, TimeSpan.Zero);
        return message;
    }

    /// <summary>What the worker's loop does with each queued message, here on the test thread (deterministic).</summary>
    private static void Drain(HandshakeQueue queue, TunnelDevice device)
    {
        var into = new byte[HandshakeQueue.SlotSize];
        while (queue.TryDequeue(into, out int length, out Endpoint from, out HandshakeAdmission work, 0))
        {
            if (work == HandshakeAdmission.CookieReply)
                device.SendCookieReply(into.AsSpan(0, length), from);
            else
                device.ReceiveHandshake(into.AsSpan(0, length), from);
        }
    }

    [Fact]
    public void Under_a_flood_every_data_packet_is_delivered_and_a_full_queue_drops_handshakes_only()
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
            // From spoofed sources: each has a fresh rate-limiter bucket, so only the queue limits them.
            Receive(pair.B, worker, FloodInitiation(random, pair.PublicB), SpoofedSource(random));
            if (i % DataEvery != 0)
                continue;
            pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, (uint)dataSent++, 200));
            foreach (Datagram d in pair.IoA.TakeSent())
                Receive(pair.B, worker, d.Bytes, DevicePair.EndpointA);
        }

        // Data went around the queue: all of it arrived, in order, with the queue full.
        Assert.Equal(Enumerable.Range(0, dataSent).Select(i => (uint?)i), pair.IoB.Delivered.Select(DevicePair.ReadIntact));
        // At 1/8 of the queue the device went under load (well below the 512/s rate trigger): from
        // then on the flood only earned cookie replies, queued up to half the queue; the rest were
        // dropped and counted. Nothing was sent from the receive side.
        Assert.Equal(HandshakeQueue.CookieReplyDepth, queue.Count);
        Assert.Equal(Flood - HandshakeQueue.CookieReplyDepth, queue.Dropped);
        Assert.Empty(pair.IoB.Sent);

        // The worker's half: the messages queued before the load get their Diffie-Hellman, which
        // fails on random content and changes no session; the rest get their cookie replies.
        Keypair? session = pair.PeerA.Keypairs.Current;
        Drain(queue, pair.B);
        Assert.Same(session, pair.PeerA.Keypairs.Current);
        List<Datagram> sent = pair.IoB.TakeSent();
        Assert.Equal(HandshakeQueue.CookieReplyDepth - HandshakeQueue.BackloggedDepth, sent.Count);
        Assert.All(sent, d => Assert.True(d.Type == MessageType.CookieReply && d.To != DevicePair.EndpointA));
    }

    [Fact]
    public void Under_load_one_flooding_source_earns_only_its_burst_of_cookie_replies()
    {
        using var pair = new DevicePair(seed: 16);
        var queue = new HandshakeQueue();
        using var threads = new DataPathThreads(NullLogger.Instance);
        var worker = new HandshakeWorker(pair.B, queue, threads, NullLogger.Instance);
        var random = new Random(16);
        for (int i = 0; i < 2000; i++)
            Receive(pair.B, worker, FloodInitiation(random, pair.PublicB), Flooder);
        // Before the load: a place in the queue each; under load: the source's bucket, then nothing.
        Assert.Equal(HandshakeQueue.BackloggedDepth + RateLimiter.DefaultPacketsBurstable, queue.Count);
        Drain(queue, pair.B);
        Assert.Equal(RateLimiter.DefaultPacketsBurstable, pair.IoB.TakeSent().Count(d => d.Type == MessageType.CookieReply));
    }

    [Fact]
    public void Under_load_a_new_peer_completes_its_handshake_through_the_cookie_reply()
    {
        using var pair = new DevicePair(seed: 14);
        var queue = new HandshakeQueue();
        using var threads = new DataPathThreads(NullLogger.Instance);
        var worker = new HandshakeWorker(pair.B, queue, threads, NullLogger.Instance);
        var random = new Random(14);
        void Flood()
        {
            for (int i = 0; i < 2 * HandshakeQueue.BackloggedDepth; i++)
                Receive(pair.B, worker, FloodInitiation(random, pair.PublicB), Flooder);
        }
        Flood();
        Assert.True(queue.Backlogged);

        // A's first initiation only earns a cookie reply: B is under load and A has no cookie yet.
        pair.A.SendPacket(DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 0, 100));
        Datagram first = Assert.Single(pair.IoA.TakeSent());
        Assert.Equal(MessageType.Initiation, first.Type);
        Receive(pair.B, worker, first.Bytes, DevicePair.EndpointA);
        Drain(queue, pair.B);
        Datagram cookie = Assert.Single(pair.IoB.TakeSent(), d => d.To == DevicePair.EndpointA);
        Assert.Equal(MessageType.CookieReply, cookie.Type);
        pair.A.ReceiveDatagram(cookie.Bytes, DevicePair.EndpointB);

        // The flood goes on; A retries after REKEY_TIMEOUT, now with mac2: past the checks and
        // the rate limiter, into the queue behind the flood.
        pair.Advance(TimeSpan.FromSeconds(6), pump: false);
        Flood();
        Datagram retry = Assert.Single(pair.IoA.TakeSent(), d => d.Type == MessageType.Initiation);
        long queued = queue.Queued;
        Receive(pair.B, worker, retry.Bytes, DevicePair.EndpointA);
        Assert.Equal(queued + 1, queue.Queued);

        // The worker thread works through the flood and answers A.
        threads.Start(worker.Run, "handshake");
        var deadline = DateTime.UtcNow.AddSeconds(60); // a liveness bound, not a speed check
        while (queue.Count > 0 && DateTime.UtcNow < deadline)
            Thread.Sleep(10);
        threads.Stop();
        queue.Close();
        threads.Join(); // the message it was on is finished before it sees the stop
        Assert.Equal(0, queue.Count);
        Assert.Equal(0, worker.Failures);
        Datagram response = Assert.Single(pair.IoB.TakeSent(), d => d.To == DevicePair.EndpointA);
        Assert.Equal(MessageType.Response, response.Type);
        pair.A.ReceiveDatagram(response.Bytes, DevicePair.EndpointB);
        Assert.NotNull(pair.PeerB.Keypairs.Current);
        foreach (Datagram d in pair.IoA.TakeSent()) // the staged packet confirms the session to B
            pair.B.ReceiveDatagram(d.Bytes, DevicePair.EndpointA);
        Assert.NotNull(pair.PeerA.Keypairs.Current);
        Assert.Single(pair.IoB.Delivered);
    }
}
