using System.Buffers.Binary;
using Tunnel.Transport;
using Xunit;

namespace Tunnel.Tests.Transport;

/// <summary>
/// Cutting TSO super-packets from the TUN device into segments: every header field the kernel's
/// tcp_gso_segment would set, and checksums checked against a plain word-by-word RFC 1071 sum
/// written here independently of <see cref="InternetChecksum"/>.
/// </summary>
public sealed class TsoSegmentsTests
{
    private const int TcpHeader = 32; // 20 + 12 bytes of options (NOP, NOP, timestamps)

    [Fact]
    public void ChecksumMatchesTheRfc1071Example()
    {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded); the checksum is its complement.
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal((ushort)0x220d, InternetChecksum.Finish(InternetChecksum.Add(0, data)));
        // Odd length: the last byte is padded with a zero byte.
        byte[] odd = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6];
        Assert.Equal(ReferenceChecksum(odd), InternetChecksum.Finish(InternetChecksum.Add(0, odd)));
    }

    [Fact]
    public void ChecksumAgreesWithTheReferenceOnRandomData()
    {
        var random = new Random(7);
        for (var length = 0; length < 300; length++)
        {
            var data = new byte[length];
            random.NextBytes(data);
            Assert.Equal(ReferenceChecksum(data), InternetChecksum.Finish(InternetChecksum.Add(0, data)));
        }
    }

    [Theory]
    [InlineData(false, 3000, 1000)]
    [InlineData(false, 2500, 1000)]
    [InlineData(true, 4100, 1368)]
    public void SplitsASuperPacketIntoValidSegments(bool ipv6, int payloadLength, int mss)
    {
        var payload = new byte[payloadLength];
        new Random(1).NextBytes(payload);
        const byte flags = 0x10 | 0x08 | 0x01 | 0x80; // ACK PSH FIN CWR
        var (packet, header) = SuperPacket(ipv6, payload, mss, flags);

        var segments = new TsoSegments(packet, header);
        var buffer = new byte[65535];
        var joined = new List<byte>();
        var count = 0;
        var ipLength = ipv6 ? 40 : 20;
        while (segments.Next(buffer, out var length))
        {
            var segment = buffer.AsSpan(0, length);
            var expectedPayload = Math.Min(mss, payloadLength - (count * mss));
            Assert.Equal(ipLength + TcpHeader + expectedPayload, length);
            var last = (count + 1) * mss >= payloadLength;
            if (ipv6)
            {
                Assert.Equal(TcpHeader + expectedPayload, BinaryPrimitives.ReadUInt16BigEndian(segment[4..]));
            }
            else
            {
                Assert.Equal(length, BinaryPrimitives.ReadUInt16BigEndian(segment[2..]));
                Assert.Equal(0x1234 + count, BinaryPrimitives.ReadUInt16BigEndian(segment[4..]));
                Assert.Equal(0, ReferenceChecksum(segment[..20])); // a valid header sums to all ones
            }
            var tcp = segment[ipLength..];
            Assert.Equal(1_000_000u + (uint)(count * mss), BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]));
            Assert.Equal(last, (tcp[13] & 0x01) != 0); // FIN only on the last
            Assert.Equal(last, (tcp[13] & 0x08) != 0); // PSH only on the last
            Assert.Equal(count == 0, (tcp[13] & 0x80) != 0); // CWR only on the first
            Assert.Equal(0, ReferenceChecksum([.. PseudoHeader(segment, ipv6, tcp.Length), .. tcp]));
            Assert.True(tcp[20..TcpHeader].SequenceEqual(packet.AsSpan(ipLength + 20, 12))); // options kept
            joined.AddRange(tcp[TcpHeader..].ToArray());
            count++;
        }
        Assert.Equal((payloadLength + mss - 1) / mss, count);
        Assert.Equal(payload, joined.ToArray());
    }

    [Fact]
    public void CompletesThePartialChecksumOfAPacketWithoutGso()
    {
        var (packet, _) = SuperPacket(ipv6: false, new byte[100], 1000, 0x18);
        var tcpLength = packet.Length - 20;
        // What the kernel hands over with NEEDS_CSUM: the pseudo-header sum, uncomplemented, in the field.
        var pseudo = PseudoHeader(packet, ipv6: false, tcpLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(20 + 16), (ushort)~ReferenceChecksum(pseudo));
        var header = new VirtioNetHeader { Flags = VirtioNetHeader.FlagNeedsChecksum, ChecksumStart = 20, ChecksumOffset = 16 };

        var segments = new TsoSegments(packet, header);
        var buffer = new byte[65535];
        Assert.True(segments.Next(buffer, out var length));
        Assert.Equal(packet.Length, length);
        Assert.Equal(0, ReferenceChecksum([.. pseudo, .. buffer.AsSpan(20, tcpLength)]));
        Assert.False(segments.Next(buffer, out _));
    }

    [Theory]
    [InlineData(0, 20)]     // GSO size 0
    [InlineData(1000, 10)]  // TCP header inside the IP header
    [InlineData(1000, 5000)] // TCP header past the end
    public void DropsPacketsWithImpossibleOffloadMetadata(int gsoSize, int checksumStart)
    {
        var (packet, header) = SuperPacket(ipv6: false, new byte[3000], 1000, 0x10);
        header = header with { GsoSize = (ushort)gsoSize, ChecksumStart = (ushort)checksumStart };
        var segments = new TsoSegments(packet, header);
        Assert.False(segments.Next(new byte[65535], out _));
    }

    [Fact]
    public void DropsATcpV4SuperPacketThatIsNotIpv4()
    {
        var (packet, header) = SuperPacket(ipv6: true, new byte[3000], 1000, 0x10);
        header = header with { GsoType = VirtioNetHeader.GsoTcpV4 };
        Assert.False(new TsoSegments(packet, header).Next(new byte[65535], out _));
    }

    internal static (byte[] Packet, VirtioNetHeader Header) SuperPacket(bool ipv6, byte[] payload, int mss, byte flags)
    {
        var ipLength = ipv6 ? 40 : 20;
        var packet = new byte[ipLength + TcpHeader + payload.Length];
        if (ipv6)
        {
            packet[0] = 0x60;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)(TcpHeader + payload.Length));
            packet[6] = 6;
            packet[7] = 64;
            packet[8] = 0xfd;
            packet[23] = 1;
            packet[24] = 0xfd;
            packet[39] = 2;
        }
        else
        {
            packet[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), 0x1234);
            packet[6] = 0x40; // DF
            packet[8] = 64;
            packet[9] = 6;
            packet.AsSpan(12).Slice(0, 4).Fill(10);
            packet[15] = 1;
            packet.AsSpan(16).Slice(0, 4).Fill(10);
            packet[19] = 2;
        }
        var tcp = packet.AsSpan(ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], 5201);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], 1_000_000);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], 777);
        tcp[12] = (TcpHeader / 4) << 4;
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 512);
        byte[] options = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3];
        options.CopyTo(tcp[20..]);
        payload.CopyTo(tcp[TcpHeader..]);
        var header = new VirtioNetHeader
        {
            Flags = VirtioNetHeader.FlagNeedsChecksum,
            GsoType = ipv6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4,
            HeaderLength = (ushort)(ipLength + TcpHeader),
            GsoSize = (ushort)mss,
            ChecksumStart = (ushort)ipLength,
            ChecksumOffset = 16,
        };
        return (packet, header);
    }

    internal static byte[] PseudoHeader(ReadOnlySpan<byte> packet, bool ipv6, int tcpLength)
    {
        var addresses = ipv6 ? packet.Slice(8, 32) : packet.Slice(12, 8);
        return [.. addresses, 0, 6, (byte)(tcpLength >> 8), (byte)tcpLength];
    }

    /// <summary>RFC 1071 done the slow, obvious way: big-endian 16-bit words, end-around carry.</summary>
    internal static ushort ReferenceChecksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (var i = 0; i < data.Length; i += 2)
        {
            sum += (uint)(data[i] << 8) | (i + 1 < data.Length ? data[i + 1] : 0u);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (ushort)~sum;
    }
}
