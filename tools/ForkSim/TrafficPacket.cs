using System.Buffers.Binary;

namespace ForkSim;

/// <summary>
/// The inner packets of the scenario: IPv4/UDP-shaped, from one tunnel address to the other,
/// carrying a sequence number and the sending guest's tag. The tag matters: clones that go on
/// sending from the same copied state must produce DIFFERENT plaintexts (as real clones would), or a
/// reused nonce would only show up as a harmless identical resend.
/// </summary>
public static class TrafficPacket
{
    public static readonly byte[] AddressA = [10, 9, 0, 1];
    public static readonly byte[] AddressB = [10, 9, 0, 2];

    public const int Size = 96;
    private const int SequenceOffset = 20;
    private const int TagOffset = 24;

    /// <summary>Writes a packet of <see cref="Size"/> bytes into <paramref name="packet"/>.</summary>
    public static void Write(Span<byte> packet, ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination,
        uint sequence, ushort senderTag)
    {
        packet = packet[..Size];
        packet.Clear();
        packet[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(packet[2..], Size);
        packet[8] = 64;
        packet[9] = 17;
        source.CopyTo(packet[12..]);
        destination.CopyTo(packet[16..]);
        BinaryPrimitives.WriteUInt32BigEndian(packet[SequenceOffset..], sequence);
        BinaryPrimitives.WriteUInt16BigEndian(packet[TagOffset..], senderTag);
        for (int i = TagOffset + 2; i < Size; i++)
            packet[i] = (byte)(sequence * 31 + senderTag * 7 + i);
    }

    /// <summary>The sequence number and tag of a packet made by <see cref="Write"/>, or false.</summary>
    public static bool TryRead(ReadOnlySpan<byte> packet, out uint sequence, out ushort senderTag)
    {
        sequence = 0;
        senderTag = 0;
        if (packet.Length != Size || BinaryPrimitives.ReadUInt16BigEndian(packet[2..]) != Size)
            return false;
        sequence = BinaryPrimitives.ReadUInt32BigEndian(packet[SequenceOffset..]);
        senderTag = BinaryPrimitives.ReadUInt16BigEndian(packet[TagOffset..]);
        return true;
    }
}
