using System.Buffers.Binary;
using System.Net;
using Tunnel.Config;
using Tunnel.Transport;
using Xunit;

namespace Integration.Tests;

/// <summary>
/// A real TUN device moved into a namespace of its own: a ping inside the namespace is routed into
/// the TUN, read by the test, answered by writing an echo reply back, and ping sees it.
/// </summary>
[Collection(RootCollection.Name)]
public sealed class LinuxTunTests
{
    [Fact]
    public void PingThroughTheTunIsReadAndAnswered()
    {
        RootCollection.RequireRootAnd("ip", "ping");
        using var ns = NetNs.Create();
        var name = NetNs.UniqueInterfaceName("tun");
        using var tun = LinuxTun.Create(name);
        Assert.Equal(name, tun.Name);
        ProcessRunner.Check(["ip", "link", "set", "dev", name, "netns", ns.Name]);
        var setup = new InterfaceSetup(name, ns.Name);
        setup.SetMtu(1380);
        setup.AddAddress(new InterfaceAddress(IPAddress.Parse("10.77.0.1"), 24));
        setup.AddAddress(new InterfaceAddress(IPAddress.Parse("fd77::1"), 64));
        setup.SetUp();
        Assert.True(IpNetwork("10.78.0.0/24", out var routed));
        setup.AddRoute(routed);

        var link = ns.Check("ip", "addr", "show", "dev", name);
        Assert.Contains("mtu 1380", link);
        Assert.Contains("10.77.0.1/24", link);
        Assert.Contains("fd77::1/64", link);
        Assert.Contains("10.78.0.0/24 dev " + name, ns.Check("ip", "route"));

        var ping = ns.Start("ping", "-c", "1", "-W", "10", "10.78.0.5");
        var answered = Task.Factory.StartNew(() => AnswerOneEcho(tun, IPAddress.Parse("10.78.0.5")),
            TaskCreationOptions.LongRunning);
        var finished = answered.Wait(TimeSpan.FromSeconds(20));
        if (!finished)
            tun.Dispose(); // wakes the reader
        Assert.True(finished, "no echo request came out of the TUN");
        Assert.True(answered.Result, "echo request not recognised");
        Assert.True(ping.WaitForExit(TimeSpan.FromSeconds(15)), "ping did not finish");
        Assert.True(ping.ExitCode == 0, ping.Output);
    }

    [Fact]
    public void DisposeDeletesTheInterfaceAndWakesTheReader()
    {
        RootCollection.RequireRootAnd("ip");
        var name = NetNs.UniqueInterfaceName("tun");
        var tun = LinuxTun.Create(name);
        Assert.Equal(0, ProcessRunner.Run(["ip", "link", "show", "dev", name]).ExitCode);
        var reader = Task.Factory.StartNew(() => tun.Read(new byte[1500]), TaskCreationOptions.LongRunning);
        Thread.Sleep(100);
        tun.Dispose();
        Assert.True(reader.Wait(TimeSpan.FromSeconds(10)), "Read did not return after Dispose");
        Assert.Equal(0, reader.Result);
        Assert.NotEqual(0, ProcessRunner.Run(["ip", "link", "show", "dev", name]).ExitCode);
        Assert.False(tun.Write(new byte[20]));
    }

    [Fact]
    public void TakenNameIsAClearError()
    {
        RootCollection.RequireRootAnd("ip");
        var name = NetNs.UniqueInterfaceName("dum");
        ProcessRunner.Check(["ip", "link", "add", name, "type", "veth", "peer", "name", name + "p"]);
        try
        {
            var e = Assert.Throws<TunException>(() => LinuxTun.Create(name));
            Assert.Contains(name, e.Message);
            Assert.False(e.IsPermissionProblem);
        }
        finally
        {
            ProcessRunner.Run(["ip", "link", "del", name]);
        }
    }

    private static bool IpNetwork(string text, out IPNetwork prefix) => IpPrefix.TryParse(text, out prefix);

    /// <summary>Reads packets until an ICMP echo request to <paramref name="target"/> (other
    /// traffic, e.g. IPv6 router solicitations, is skipped) and writes the matching reply.</summary>
    private static bool AnswerOneEcho(LinuxTun tun, IPAddress target)
    {
        var packet = new byte[2048];
        var targetBytes = target.GetAddressBytes();
        while (true)
        {
            var n = tun.Read(packet);
            if (n == 0)
                return false;
            var p = packet.AsSpan(0, n);
            if (n < 28 || p[0] >> 4 != 4 || p[9] != 1 || !p.Slice(16, 4).SequenceEqual(targetBytes))
                continue;
            var headerLength = (p[0] & 0xf) * 4;
            if (p[headerLength] != 8)
                continue;
            // Swap source and destination, make it an echo reply, fix both checksums.
            Span<byte> source = stackalloc byte[4];
            p.Slice(12, 4).CopyTo(source);
            p.Slice(16, 4).CopyTo(p.Slice(12, 4));
            source.CopyTo(p.Slice(16, 4));
            p[8] = 64;
            p[10] = p[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(p.Slice(10), Checksum(p[..headerLength]));
            var icmp = p[headerLength..];
            icmp[0] = 0;
            icmp[2] = icmp[3] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(icmp.Slice(2), Checksum(icmp));
            return tun.Write(p);
        }
    }

    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i + 1 < data.Length; i += 2)
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (data.Length % 2 == 1)
            sum += (uint)data[^1] << 8;
        while (sum >> 16 != 0)
            sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }
}
