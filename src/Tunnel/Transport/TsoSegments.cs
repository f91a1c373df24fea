using System.Buffers.Binary;

namespace Tunnel.Transport;

/// <summary>
/// What a TUN device with TSO offload hands us, turned back into wire-sized IP packets: a TCP
/// "super-packet" (one IPv4/IPv6 + TCP header, up to 64 KiB of payload) cut into segments of
/// <see cref="VirtioNetHeader.GsoSize"/> bytes, each with its own header fixed up as the kernel's
/// tcp_gso_segment would (IPv4 length, id and header checksum; IPv6 payload length; TCP sequence
/// number, FIN/PSH only on the last segment, CWR only on the first, full TCP checksum). A packet
/// without GSO passes through once, its checksum completed if the kernel left it partial.
/// Malformed offload metadata yields nothing: the packet is dropped. No allocation.
/// </summary>
internal ref struct TsoSegments
{
    private const byte TcpFin = 0x01;
    private const byte TcpPsh = 0x08;
    private const byte TcpCwr = 0x80;
    private const byte ProtocolTcp = 6;

    private readonly ReadOnlySpan<byte> _packet;
    private readonly VirtioNetHeader _header;
    private readonly int _headerLength; // IP + TCP headers, for GSO packets
    private int _offset;
    private int _index;
    private bool _done;

    /// <param name="packet">The packet after the virtio-net header.</param>
    /// <param name="header">The virtio-net header read with the packet.</param>
    public TsoSegments(ReadOnlySpan<byte> packet, VirtioNetHeader header)
    {
        _packet = packet;
        _header = header;
        _done = false;
        _index = 0;
        _headerLength = 0;
        _offset = 0;
        if (header.GsoType == VirtioNetHeader.GsoNone)
            return;
        // The TCP header starts at csum_start (the kernel always sets it for TSO); its length is
        // read from the data offset rather than trusting hdr_len, as wireguard-go does.
        var transport = header.ChecksumStart;
        if (header.GsoSize == 0 || transport < 20 || transport + 20 > packet.Length
            || (header.GsoType == VirtioNetHeader.GsoTcpV4 ? packet[0] >> 4 != 4 : packet[0] >> 4 != 6)
            || (header.GsoType is not (VirtioNetHeader.GsoTcpV4 or VirtioNetHeader.GsoTcpV6)))
        {
            _done = true;
            return;
        }
        _headerLength = transport + ((packet[transport + 12] >> 4) * 4);
        if (_headerLength > packet.Length || (packet[transport + 12] >> 4) < 5)
            _done = true;
        _offset = _headerLength;
    }

    /// <summary>The longest segment <see cref="Next"/> can write: room enough to ask for.</summary>
    public readonly int MaxLength =>
        _header.GsoType == VirtioNetHeader.GsoNone ? _packet.Length : Math.Min(_packet.Length, _headerLength + _header.GsoSize);

    /// <summary>
    /// Writes the next segment into <paramref name="segment"/> (at least GsoSize + headers long;
    /// 64 KiB always does) and returns its length in <paramref name="length"/>; false at the end.
    /// A packet without GSO is returned as is (completed in place is not possible on a read-only
    /// span, so it is copied too: the copy is one packet, the cost of a memcpy).
    /// </summary>
    public bool Next(Span<byte> segment, out int length)
    {
        length = 0;
        if (_done)
            return false;
        if (_header.GsoType == VirtioNetHeader.GsoNone)
        {
            _done = true;
            if (_packet.Length > segment.Length)
                return false;
            _packet.CopyTo(segment);
            length = _packet.Length;
            if (_header.NeedsChecksum)
            {
                // The kernel put the pseudo-header sum in the field: summing from csum_start to
                // the end, field included, gives the final checksum.
                int start = _header.ChecksumStart, field = start + _header.ChecksumOffset;
                if (field + 2 > length)
                    return false;
                var sum = InternetChecksum.Add(0, segment[start..length]);
                BinaryPrimitives.WriteUInt16BigEndian(segment[field..], InternetChecksum.Finish(sum));
            }
            return true;
        }

        var payloadLeft = _packet.Length - _offset;
        if (payloadLeft <= 0 && _index > 0)
        {
            _done = true;
            return false;
        }
        var size = Math.Min(_header.GsoSize, payloadLeft);
        var last = _offset + size >= _packet.Length;
        length = _headerLength + size;
        if (length > segment.Length)
        {
            _done = true;
            return false;
        }
        _packet[.._headerLength].CopyTo(segment);
        _packet.Slice(_offset, size).CopyTo(segment[_headerLength..]);

        int transport = _header.ChecksumStart;
        var tcpLength = length - transport;
        ReadOnlySpan<byte> source, destination;
        if (_header.GsoType == VirtioNetHeader.GsoTcpV4)
        {
            var ipHeaderLength = (segment[0] & 0xf) * 4;
            BinaryPrimitives.WriteUInt16BigEndian(segment[2..], (ushort)length);
            var id = BinaryPrimitives.ReadUInt16BigEndian(segment[4..]);
            BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(id + _index));
            segment.Slice(10, 2).Clear();
            BinaryPrimitives.WriteUInt16BigEndian(segment[10..],
                InternetChecksum.Finish(InternetChecksum.Add(0, segment[..ipHeaderLength])));
            source = segment.Slice(12, 4);
            destination = segment.Slice(16, 4);
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(segment[4..], (ushort)(length - 40));
            source = segment.Slice(8, 16);
            destination = segment.Slice(24, 16);
        }

        var tcp = segment[transport..length];
        var sequence = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], sequence + (uint)(_offset - _headerLength));
        if (!last)
            tcp[13] &= unchecked((byte)~(TcpFin | TcpPsh));
        if (_index > 0)
            tcp[13] &= unchecked((byte)~TcpCwr);
        tcp.Slice(16, 2).Clear();
        var tcpSum = InternetChecksum.Add(InternetChecksum.PseudoHeader(source, destination, ProtocolTcp, tcpLength), tcp);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], InternetChecksum.Finish(tcpSum));

        _offset += size;
        _index++;
        if (last)
            _done = true;
        return true;
    }
}
