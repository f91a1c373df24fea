using System.Net;
using System.Net.Sockets;
using Tunnel.Device;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

public sealed class UdpBindTests
{
    /// <summary>The address to reach <paramref name="endpoint"/> through <paramref name="bind"/>.</summary>
    private static SocketAddress To(UdpBind bind, IPEndPoint endpoint)
    {
        var address = new SocketAddress(bind.AddressFamily);
        Assert.True(EndpointAddress.TryWrite(Endpoint.FromIPEndPoint(endpoint), bind.AddressFamily, address));
        return address;
    }

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

        using var batch = new UdpReceiveBatch();
        Assert.Equal(1, bind.ReceiveBatch(batch));
        Assert.Equal("hello"u8.ToArray(), batch.Data(0).ToArray());
        Assert.True(EndpointAddress.TryRead(batch.Source(0), out var from));
        Assert.Equal(client.LocalEndPoint, from.ToIPEndPoint()); // IPv4 comes back as IPv4, not ::ffff:
        // The local address it came to (IP_PKTINFO / IPV6_PKTINFO), in the peer's family too.
        Assert.Equal(address.GetAddressBytes(), batch.LocalAddress(0).ToArray());
        from = from.WithSource(batch.LocalAddress(0), batch.LocalIfIndex(0));

        Assert.True(bind.Send("world"u8, To(bind, from.ToIPEndPoint()), from));
        var reply = new byte[16];
        var m = client.Receive(reply);
        Assert.Equal("world"u8.ToArray(), reply[..m]);
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
        using var batch = new UdpReceiveBatch();
        var receiver = Task.Factory.StartNew(() => bind.ReceiveBatch(batch), TaskCreationOptions.LongRunning);
        Thread.Sleep(100); // let it block (the assertion does not depend on it)
        bind.Dispose();
        Assert.True(receiver.Wait(TimeSpan.FromSeconds(10)), "ReceiveBatch did not return after Dispose");
        Assert.Equal(-1, receiver.Result);
    }

    [Fact]
    public void SendToUnreachableDoesNotThrow()
    {
        using var bind = UdpBind.Open(0);
        // Port 9 on loopback: nobody listens; any ICMP error must not surface as an exception.
        var target = To(bind, new IPEndPoint(IPAddress.Loopback, 9));
        bind.Send("x"u8, target, default);
        bind.Send("x"u8, target, default);
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public void A_source_address_the_host_does_not_have_is_dropped_and_the_reply_still_leaves(string loopback)
    {
        // A reply's source came from a datagram; the address may since have been removed. The
        // kernel refuses it (ENETUNREACH, EINVAL); the send must go out from the address routing picks.
        using var bind = UdpBind.Open(0);
        var address = IPAddress.Parse(loopback);
        using var client = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(address, 0));
        client.ReceiveTimeout = 10_000;
        var clientEndpoint = (IPEndPoint)client.LocalEndPoint!;
        byte[] absent = address.AddressFamily == AddressFamily.InterNetwork
            ? [192, 0, 2, 77]
            : IPAddress.Parse("2001:db8::77").GetAddressBytes();
        var gone = Endpoint.FromIPEndPoint(clientEndpoint).WithSource(absent, 0);

        Assert.True(bind.Send("still"u8, To(bind, clientEndpoint), gone));
        var reply = new byte[16];
        EndPoint sender = new IPEndPoint(address.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Any : IPAddress.IPv6Any, 0);
        var n = client.ReceiveFrom(reply, ref sender);
        Assert.Equal("still"u8.ToArray(), reply[..n]);
        Assert.Equal(address, ((IPEndPoint)sender).Address);
    }

    [Fact]
    public void SteadyStateReceiveAndSendDoNotAllocate()
    {
        using var bind = UdpBind.Open(0);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        client.ReceiveTimeout = 10_000;
        using var batch = new UdpReceiveBatch();
        var back = To(bind, (IPEndPoint)client.LocalEndPoint!);
        var backFrom = Endpoint.FromIPEndPoint((IPEndPoint)client.LocalEndPoint!);
        var buffer = new byte[1500];
        var payload = new byte[1200];

        var clientTarget = new IPEndPoint(IPAddress.Loopback, bind.Port).Serialize();
        long RoundTrip(int count)
        {
            long bindAllocated = 0;
            for (var i = 0; i < count; i++)
            {
                client.SendTo(payload, SocketFlags.None, clientTarget);
                var before = GC.GetAllocatedBytesForCurrentThread();
                bind.ReceiveBatch(batch);
                bind.Send(batch.Data(0)[..100], back, backFrom.WithSource(batch.LocalAddress(0), batch.LocalIfIndex(0)));
                bindAllocated += GC.GetAllocatedBytesForCurrentThread() - before;
                client.Receive(buffer);
            }
            return bindAllocated;
        }

        RoundTrip(200); // warm up: JIT tiers, socket internals
        // The least of three rounds: a one-time runtime allocation on this thread (tier-up, on-stack
        // replacement) shows in one round at most, a per-packet allocation in every round.
        var allocated = Math.Min(RoundTrip(1000), Math.Min(RoundTrip(1000), RoundTrip(1000)));
        Assert.True(allocated == 0, $"{allocated} bytes allocated by the bind over 1000 round trips");
    }
}
