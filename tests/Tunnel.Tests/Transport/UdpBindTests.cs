using System.Net;
using System.Net.Sockets;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

public sealed class UdpBindTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void ReceivesWithSourceAndRepliesToIt(string loopback)
    {
        using var bind = UdpBind.Open(0);
        Assert.NotEqual(0, bind.Port);
        Assert.True(bind.DualStack);
        var address = IPAddress.Parse(loopback);
        using var client = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(address, 0));
        client.ReceiveTimeout = 10_000;
        client.SendTo("hello"u8, new IPEndPoint(address, bind.Port));

        var buffer = new byte[1500];
        var source = bind.CreateReceiveAddress();
        var n = bind.Receive(buffer, source);
        Assert.Equal("hello"u8.ToArray(), buffer[..n]);
        var from = UdpBind.ToEndPoint(source);
        Assert.Equal(client.LocalEndPoint, from); // IPv4 comes back as IPv4, not ::ffff:

        Assert.True(bind.Send("world"u8, source));
        var reply = new byte[16];
        var m = client.Receive(reply);
        Assert.Equal("world"u8.ToArray(), reply[..m]);

        // A stored endpoint converts to the same address the socket reports.
        Assert.Equal(source, bind.ToSocketAddress(from));
    }

    [Fact]
    public void SendsToAnIPv4EndpointFromTheDualStackSocket()
    {
        using var bind = UdpBind.Open(0);
        using var server = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        server.ReceiveTimeout = 10_000;
        Assert.True(bind.Send("x"u8, bind.ToSocketAddress((IPEndPoint)server.LocalEndPoint!)));
        var buffer = new byte[4];
        EndPoint from = new IPEndPoint(IPAddress.Any, 0);
        Assert.Equal(1, server.ReceiveFrom(buffer, ref from));
        Assert.Equal(bind.Port, ((IPEndPoint)from).Port);
    }

    [Fact]
    public void PortInUseIsRefused()
    {
        using var first = UdpBind.Open(0);
        var e = Assert.Throws<SocketException>(() => UdpBind.Open(first.Port));
        Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
    }

    [Fact]
    public void DisposeWakesABlockedReceiver()
    {
        var bind = UdpBind.Open(0);
        var receiver = Task.Factory.StartNew(() => bind.Receive(new byte[64], bind.CreateReceiveAddress()),
            TaskCreationOptions.LongRunning);
        Thread.Sleep(100); // let it block (the assertion does not depend on it)
        bind.Dispose();
        Assert.True(receiver.Wait(TimeSpan.FromSeconds(10)), "Receive did not return after Dispose");
        Assert.Equal(-1, receiver.Result);
    }

    [Fact]
    public void SendToUnreachableDoesNotThrow()
    {
        using var bind = UdpBind.Open(0);
        // Port 9 on loopback: nobody listens; any ICMP error must not surface as an exception.
        var target = bind.ToSocketAddress(new IPEndPoint(IPAddress.Loopback, 9));
        bind.Send("x"u8, target);
        bind.Send("x"u8, target);
    }

    [Fact]
    public void SteadyStateReceiveAndSendDoNotAllocate()
    {
        using var bind = UdpBind.Open(0);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var target = new IPEndPoint(IPAddress.Loopback, bind.Port);
        var buffer = new byte[1500];
        var source = bind.CreateReceiveAddress();
        var payload = new byte[1200];

        var clientTarget = target.Serialize();
        long RoundTrip(int count)
        {
            long bindAllocated = 0;
            for (var i = 0; i < count; i++)
            {
                client.SendTo(payload, SocketFlags.None, clientTarget);
                var before = GC.GetAllocatedBytesForCurrentThread();
                bind.Receive(buffer, source);
                bind.Send(buffer.AsSpan(0, 100), source);
                bindAllocated += GC.GetAllocatedBytesForCurrentThread() - before;
                client.Receive(buffer);
            }
            return bindAllocated;
        }

        RoundTrip(200); // warm up: JIT tiers, socket internals
        var allocated = RoundTrip(1000);
        Assert.True(allocated == 0, $"{allocated} bytes allocated by the bind over 1000 round trips");
    }
}
