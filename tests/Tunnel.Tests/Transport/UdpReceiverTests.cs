using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Tunnel.Device;
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
}
