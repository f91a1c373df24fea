using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>The udp-receive loop on a real loopback socket, with a handler standing in for the engine.</summary>
public sealed class UdpReceiverTests
{
    private const int Good = 100;
    private const byte Poison = 0xff;

    [Fact]
    public void A_datagram_whose_handling_throws_is_dropped_alone_and_counted()
    {
        var bind = UdpBind.Open(0); // disposed below, to end the loop
        var io = new InterfaceIo(null!, bind, NullLogger.Instance);
        using var threads = new DataPathThreads(NullLogger.Instance);
        var received = new List<int>();
        void Handle(ReadOnlySpan<byte> datagram, in Endpoint from)
        {
            if (datagram[0] == Poison)
                throw new InvalidOperationException("a bug this datagram trips");
            lock (received)
                received.Add(datagram[1]);
        }
        var receiver = new UdpReceiver(io, Handle, coalescer: null, threads, NullLogger.Instance);

        // Queued before the loop starts, so every batch it reads mixes failing and good datagrams.
        using (var peer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
        {
            var to = new IPEndPoint(IPAddress.Loopback, bind.Port);
            for (var i = 0; i < Good; i++)
            {
                peer.SendTo([Poison, (byte)i, 0, 0], to);
                peer.SendTo([1, (byte)i, 0, 0], to);
            }
        }
        threads.Start(receiver.Run, "udp-receive");
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(20); // a liveness bound, not a speed check
            while (DateTime.UtcNow < deadline)
            {
                lock (received)
                {
                    if (received.Count == Good)
                        break;
                }
                Thread.Sleep(10);
            }
        }
        finally
        {
            threads.Stop();
            bind.Dispose();
            threads.Join();
        }
        Assert.Equal(Enumerable.Range(0, Good), received);
        Assert.Equal(Good, receiver.Failures);
        Assert.Equal(2 * Good, receiver.Datagrams);
    }

    [Fact]
    public void Handshake_messages_go_to_the_handshake_queue_and_data_stays_on_the_receive_thread()
    {
        const int Each = HandshakeQueue.BackloggedDepth - 28; // fewer than put the device under load
        using var pair = new DevicePair(seed: 15);
        var bind = UdpBind.Open(0); // disposed below, to end the loop
        var io = new InterfaceIo(null!, bind, NullLogger.Instance);
        using var threads = new DataPathThreads(NullLogger.Instance);
        var queue = new HandshakeQueue();
        var handshakes = new HandshakeWorker(pair.B, queue, threads, NullLogger.Instance); // not running
        var inline = new List<int>();
        void Handle(ReadOnlySpan<byte> datagram, in Endpoint from)
        {
            lock (inline)
                inline.Add(datagram[4]);
        }
        var receiver = new UdpReceiver(io, Handle, coalescer: null, threads, NullLogger.Instance, handshakes);

        try
        {
            threads.Start(receiver.Run, "udp-receive");
            var random = new Random(15);
            using (var peer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            {
                peer.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.SendBuffer, 1 << 20);
                var to = new IPEndPoint(IPAddress.Loopback, bind.Port);
                var macs = new Tunnel.Device.CookieGenerator(new Tunnel.Crypto.PublicKey(pair.PublicB));
                for (var i = 0; i < Each; i++)
                {
                    var initiation = new byte[MessageInitiation.Size];
                    random.NextBytes(initiation);
                    MessageHeader.WriteType(initiation, MessageType.Initiation);
                    macs.AddMacs(initiation, TimeSpan.Zero);
                    peer.SendTo(initiation, to);
                    var transport = new byte[MessageTransport.MinimumSize + 16];
                    MessageHeader.WriteType(transport, MessageType.Transport);
                    transport[4] = (byte)i;
                    peer.SendTo(transport, to);
                }
            }
            var deadline = DateTime.UtcNow.AddSeconds(20); // a liveness bound, not a speed check
            while (DateTime.UtcNow < deadline && receiver.Datagrams < 2 * Each)
                Thread.Sleep(10);
        }
        finally
        {
            threads.Stop();
            bind.Dispose();
            threads.Join();
        }
        Assert.Equal(2 * Each, receiver.Datagrams);
        Assert.Equal(Enumerable.Range(0, Each).Select(i => i % 256), inline);
        Assert.Equal(Each, queue.Queued); // each passed mac1, so each was queued (for a DH or a cookie reply)
        Assert.Empty(pair.IoB.Sent); // nothing was answered on the receive thread
    }
}
