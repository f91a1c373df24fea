using System.Buffers.Binary;
using Tunnel.Transport;
using Xunit;
using static Tunnel.Tests.Transport.TsoSegmentsTests;

namespace Tunnel.Tests.Transport;

/// <summary>
/// Receive-side coalescing: segments are joined only when they continue each other exactly, the
/// joined packet cut up again gives back the very segments that went in, and nothing is ever
/// reordered.
/// </summary>
public sealed class TcpCoalescerTests
{
    private sealed class Recorder : ITunWriter
    {
        public List<(VirtioNetHeader Header, byte[] Packet)> Writes { get; } = [];

        public bool Write(ReadOnlySpan<byte> packet)
        {
            Writes.Add((default, packet.ToArray()));
            return true;
        }

        public bool WriteFramed(ReadOnlySpan<byte> framed)
        {
            Writes.Add((VirtioNetHeader.Read(framed), framed[VirtioNetHeader.Size..].ToArray()));
            return true;
        }
    }

    private static List<byte[]> Segments(bool ipv6, int payloadLength, int mss, byte flags = 0x18, ushort sourcePort = 40000)
    {
        var payload = new byte[payloadLength];
        new Random(payloadLength).NextBytes(payload);
        var (packet, header) = SuperPacket(ipv6, payload, mss, flags);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(ipv6 ? 40 : 20), sourcePort);
        var segments = new TsoSegments(packet, header);
        var buffer = new byte[65535];
        var result = new List<byte[]>();
        while (segments.Next(buffer, out var length))
            result.Add(buffer[..length]);
        return result;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void JoinsAContiguousRunIntoOneGsoWriteThatSplitsBackIntoTheSameSegments(bool ipv6)
    {
        var segments = Segments(ipv6, 5 * 1000 + 300, 1000);
        var tun = new Recorder();
        var coalescer = new TcpCoalescer();
        foreach (var segment in segments)
            coalescer.Add(tun, segment);
        Assert.Empty(tun.Writes); // held until the batch ends
        coalescer.Flush(tun);

        var (header, joined) = Assert.Single(tun.Writes);
        Assert.True(header.NeedsChecksum);
        Assert.Equal(ipv6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4, header.GsoType);
        Assert.Equal(1000, header.GsoSize);
        var ipLength = ipv6 ? 40 : 20;
        Assert.Equal(ipLength, header.ChecksumStart);
        Assert.Equal(16, header.ChecksumOffset);
        Assert.Equal(ipLength + 32, header.HeaderLength);
        // NEEDS_CSUM: the field holds the uncomplemented pseudo-header sum for the joined length.
        var pseudo = PseudoHeader(joined, ipv6, joined.Length - ipLength);
        Assert.Equal((ushort)~ReferenceChecksum(pseudo), BinaryPrimitives.ReadUInt16BigEndian(joined.AsSpan(ipLength + 16)));
        if (!ipv6)
            Assert.Equal(0, ReferenceChecksum(joined.AsSpan(0, 20)));

        var again = new TsoSegments(joined, header);
        var buffer = new byte[65535];
        var i = 0;
        while (again.Next(buffer, out var length))
            Assert.Equal(segments[i++], buffer[..length]);
        Assert.Equal(segments.Count, i);
    }

    [Fact]
    public void NeverJoinsAcrossAGapAndKeepsTheOrder()
    {
        var segments = Segments(false, 3000, 1000);
        var tun = new Recorder();
        var coalescer = new TcpCoalescer();
        coalescer.Add(tun, segments[0]);
        coalescer.Add(tun, segments[2]);
        coalescer.Add(tun, segments[1]);
        coalescer.Flush(tun);
        Assert.Equal([segments[0], segments[2], segments[1]], tun.Writes.Select(w => w.Packet));
        Assert.All(tun.Writes, w => Assert.Equal(VirtioNetHeader.GsoNone, w.Header.GsoType));
    }

    [Fact]
    public void OtherPacketsFlushTheRunFirstAndOtherFlowsAreNotJoined()
    {
        var flowA = Segments(false, 2000, 1000, flags: 0x10);
        var flowB = Segments(false, 2000, 1000, flags: 0x10, sourcePort: 40001);
        var udp = new byte[28];
        udp[0] = 0x45;
        udp[3] = 28;
        udp[9] = 17;
        var tun = new Recorder();
        var coalescer = new TcpCoalescer();
        coalescer.Add(tun, flowA[0]);
        coalescer.Add(tun, udp);         // not TCP: written at once, after the run it interrupts
        coalescer.Add(tun, flowA[1]);
        coalescer.Add(tun, flowB[1]);    // another flow: flushes A's
        coalescer.Flush(tun);
        Assert.Equal([flowA[0], udp, flowA[1], flowB[1]], tun.Writes.Select(w => w.Packet));
    }

    [Fact]
    public void AShortOrPushedSegmentEndsTheRun()
    {
        var segments = Segments(false, 4500, 1000, flags: 0x10);
        segments[1][33] |= 0x08; // PSH on the second (checksum no longer matters: nothing verifies it here)
        var tun = new Recorder();
        var coalescer = new TcpCoalescer();
        foreach (var segment in segments)
            coalescer.Add(tun, segment);
        coalescer.Flush(tun);
        // [0,1] joined and closed by PSH; then [2,3,4], whose last is the short one.
        Assert.Equal(2, tun.Writes.Count);
        Assert.Equal(20 + 32 + 2000, tun.Writes[0].Packet.Length);
        Assert.Equal(20 + 32 + 2500, tun.Writes[1].Packet.Length);
        Assert.NotEqual(0, tun.Writes[0].Packet[33] & 0x08);
    }
}
