using System.Buffers.Binary;

namespace Tunnel.Transport;

/// <summary>
/// Receive-side GRO for the TUN device (wireguard-go's tun/offload_linux.go does the same with a
/// table of flows): consecutive TCP segments of one flow that arrive in one UDP read are joined
/// into one large packet written once, behind a virtio-net header that tells the kernel it is
/// TSO-sized (GSO_TCPV4/6, NEEDS_CSUM). The kernel's TCP then handles a 64 KiB packet where it
/// would have handled 40 small ones. Only exact continuations join: same IP and TCP header apart
/// from length, IPv4 id and checksum, sequence number and PSH; the sequence number follows on;
/// every segment but the last has the first one's size; no SYN/FIN/RST/URG/CWR/ECE. Anything
/// else flushes what is held and goes on by itself, so the order of packets never changes. One
/// owner thread; <see cref="Flush"/> at the end of each read.
/// </summary>
internal sealed class TcpCoalescer
{
    private const int MaxPacket = 65535;
    private const byte ProtocolTcp = 6;
    private const byte TcpAck = 0x10;
    private const byte TcpPsh = 0x08;

    // [virtio-net header][IP header][TCP header][payload of every joined segment]
    private readonly byte[] _buffer = new byte[VirtioNetHeader.Size + MaxPacket];
    private int _length;        // of the IP packet held (0 = none)
    private int _ipHeaderLength;
    private int _headerLength;  // IP + TCP
    private int _segmentSize;   // payload of the first segment
    private int _count;
    private uint _nextSequence;
    private bool _closed;       // a short segment ended the run
    private bool _ipv6;

    /// <summary>Hands <paramref name="packet"/> on, joined to the held run if it continues it.</summary>
    public void Add(ITunWriter tun, ReadOnlySpan<byte> packet)
    {
        if (!TryParse(packet, out var ipv6, out var ipHeaderLength, out var headerLength))
        {
            Flush(tun);
            tun.Write(packet);
            return;
        }
        var payload = packet.Length - headerLength;
        if (_length > 0 && CanAppend(packet, ipv6, headerLength, payload))
        {
            packet[headerLength..].CopyTo(_buffer.AsSpan(VirtioNetHeader.Size + _length));
            _length += payload;
            _nextSequence += (uint)payload;
            _count++;
            var held = _buffer.AsSpan(VirtioNetHeader.Size);
            held[_ipHeaderLength + 13] |= (byte)(packet[ipHeaderLength + 13] & TcpPsh);
            if (payload < _segmentSize || (packet[ipHeaderLength + 13] & TcpPsh) != 0)
                _closed = true;
            return;
        }
        Flush(tun);
        if (payload == 0)
        {
            tun.Write(packet); // a pure ACK: nothing to join it to
            return;
        }
        packet.CopyTo(_buffer.AsSpan(VirtioNetHeader.Size));
        _length = packet.Length;
        _ipHeaderLength = ipHeaderLength;
        _headerLength = headerLength;
        _segmentSize = payload;
        _count = 1;
        _ipv6 = ipv6;
        _closed = (packet[ipHeaderLength + 13] & TcpPsh) != 0;
        _nextSequence = BinaryPrimitives.ReadUInt32BigEndian(packet[(ipHeaderLength + 4)..]) + (uint)payload;
    }

    /// <summary>Writes what is held: as it came when it is one segment, else as one GSO packet.</summary>
    public void Flush(ITunWriter tun)
    {
        if (_length == 0)
            return;
        var framed = _buffer.AsSpan(0, VirtioNetHeader.Size + _length);
        var packet = framed[VirtioNetHeader.Size..];
        var header = framed[..VirtioNetHeader.Size];
        header.Clear();
        if (_count > 1)
        {
            header[0] = VirtioNetHeader.FlagNeedsChecksum;
            header[1] = _ipv6 ? VirtioNetHeader.GsoTcpV6 : VirtioNetHeader.GsoTcpV4;
            BinaryPrimitives.WriteUInt16LittleEndian(header[2..], (ushort)_headerLength);
            BinaryPrimitives.WriteUInt16LittleEndian(header[4..], (ushort)_segmentSize);
            BinaryPrimitives.WriteUInt16LittleEndian(header[6..], (ushort)_ipHeaderLength);
            BinaryPrimitives.WriteUInt16LittleEndian(header[8..], 16); // TCP checksum field
            ReadOnlySpan<byte> source, destination;
            if (_ipv6)
            {
                BinaryPrimitives.WriteUInt16BigEndian(packet[4..], (ushort)(_length - 40));
                source = packet.Slice(8, 16);
                destination = packet.Slice(24, 16);
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(packet[2..], (ushort)_length);
                packet.Slice(10, 2).Clear();
                BinaryPrimitives.WriteUInt16BigEndian(packet[10..],
                    InternetChecksum.Finish(InternetChecksum.Add(0, packet[.._ipHeaderLength])));
                source = packet.Slice(12, 4);
                destination = packet.Slice(16, 4);
            }
            // NEEDS_CSUM: the field holds the pseudo-header sum (not complemented); the kernel
            // treats the packet as checksum-partial, as it does its own TSO packets.
            var pseudo = InternetChecksum.PseudoHeader(source, destination, ProtocolTcp, _length - _ipHeaderLength);
            BinaryPrimitives.WriteUInt16BigEndian(packet[(_ipHeaderLength + 16)..], (ushort)~InternetChecksum.Finish(pseudo));
        }
        // Forget the run before writing: a packet the kernel refuses (IOException) is gone either way.
        _length = 0;
        _count = 0;
        _closed = false;
        tun.WriteFramed(framed);
    }

    private bool CanAppend(ReadOnlySpan<byte> packet, bool ipv6, int headerLength, int payload)
    {
        if (_closed || ipv6 != _ipv6 || headerLength != _headerLength || payload == 0 || payload > _segmentSize
            || _length + payload > MaxPacket)
            return false;
        var held = _buffer.AsSpan(VirtioNetHeader.Size, _headerLength);
        var tcp = _ipHeaderLength;
        if (BinaryPrimitives.ReadUInt32BigEndian(packet[(tcp + 4)..]) != _nextSequence)
            return false;
        if (ipv6)
        {
            // Version, class, flow label; then next header, hop limit, both addresses.
            if (!packet[..4].SequenceEqual(held[..4]) || !packet[6..40].SequenceEqual(held[6..40]))
                return false;
        }
        else if (!packet[..2].SequenceEqual(held[..2]) || !packet[6..10].SequenceEqual(held[6..10])
                 || !packet[12.._ipHeaderLength].SequenceEqual(held[12.._ipHeaderLength]))
        {
            return false;
        }
        // TCP: ports; then everything from the ack number on except PSH and the checksum.
        return packet.Slice(tcp, 4).SequenceEqual(held.Slice(tcp, 4))
               && packet.Slice(tcp + 8, 5).SequenceEqual(held.Slice(tcp + 8, 5))
               && (packet[tcp + 13] | TcpPsh) == (held[tcp + 13] | TcpPsh)
               && packet.Slice(tcp + 14, 2).SequenceEqual(held.Slice(tcp + 14, 2))
               && packet[(tcp + 18)..headerLength].SequenceEqual(held[(tcp + 18)..headerLength]);
    }

    /// <summary>A TCP segment we may join: plain IPv4 (no options, not a fragment) or IPv6 with
    /// TCP as the first next header, flags ACK with perhaps PSH.</summary>
    private static bool TryParse(ReadOnlySpan<byte> packet, out bool ipv6, out int ipHeaderLength, out int headerLength)
    {
        ipv6 = false;
        ipHeaderLength = 0;
        headerLength = 0;
        if (packet.Length < 40)
            return false;
        switch (packet[0] >> 4)
        {
            case 4:
                if (packet[0] != 0x45 || packet[9] != ProtocolTcp
                    || (BinaryPrimitives.ReadUInt16BigEndian(packet[6..]) & 0x3fff) != 0 // MF or an offset
                    || BinaryPrimitives.ReadUInt16BigEndian(packet[2..]) != packet.Length)
                    return false;
                ipHeaderLength = 20;
                break;
            case 6:
                if (packet.Length < 60 || packet[6] != ProtocolTcp
                    || BinaryPrimitives.ReadUInt16BigEndian(packet[4..]) + 40 != packet.Length)
                    return false;
                ipv6 = true;
                ipHeaderLength = 40;
                break;
            default:
                return false;
        }
        var dataOffset = (packet[ipHeaderLength + 12] >> 4) * 4;
        headerLength = ipHeaderLength + dataOffset;
        var flags = packet[ipHeaderLength + 13];
        return dataOffset >= 20 && headerLength <= packet.Length && (flags & ~TcpPsh) == TcpAck
               && (packet[ipHeaderLength + 12] & 0x0f) == 0; // no AE/reserved bits
    }
}
