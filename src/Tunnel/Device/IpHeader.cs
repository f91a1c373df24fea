using System.Buffers.Binary;

namespace Tunnel.Device;

/// <summary>
/// The few IPv4/IPv6 header fields cryptokey routing reads (whitepaper 2): the destination of an
/// outgoing packet, the source and true length of a decrypted one.
/// </summary>
internal static class IpHeader
{
    private const int IPv4HeaderSize = 20;
    private const int IPv6HeaderSize = 40;

    /// <summary>The destination address (4 or 16 bytes) of an IPv4/IPv6 packet from the TUN device.</summary>
    public static bool TryGetDestination(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> destination)
    {
        destination = default;
        if (packet.Length == 0)
            return false;
        switch (packet[0] >> 4)
        {
            case 4 when packet.Length >= IPv4HeaderSize:
                destination = packet.Slice(16, 4);
                return true;
            case 6 when packet.Length >= IPv6HeaderSize:
                destination = packet.Slice(24, 16);
                return true;
            default:
                return false;
        }
    }

    /// <summary>
    /// The source address and the length the header claims (which strips the padding) of a
    /// decrypted packet; false if it is not a well-formed IPv4/IPv6 packet that fits.
    /// </summary>
    public static bool TryGetSource(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> source, out int length)
    {
        source = default;
        length = 0;
        if (packet.Length == 0)
            return false;
        switch (packet[0] >> 4)
        {
            case 4 when packet.Length >= IPv4HeaderSize:
                length = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
                source = packet.Slice(12, 4);
                return length >= IPv4HeaderSize && length <= packet.Length;
            case 6 when packet.Length >= IPv6HeaderSize:
                length = IPv6HeaderSize + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
                source = packet.Slice(8, 16);
                return length <= packet.Length;
            default:
                return false;
        }
    }
}
