using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Tunnel.Transport;

/// <summary>
/// The RFC 1071 one's-complement sum, for the IPv4 header and TCP checksums the TUN offload
/// leaves to us (segments split from a TSO packet, packets marked NEEDS_CSUM). The sum is
/// byte-order independent up to a final swap (RFC 1071 section 2(B)), so it adds native 32-bit
/// words into a 64-bit accumulator and swaps once at the end.
/// </summary>
internal static class InternetChecksum
{
    /// <summary>Adds <paramref name="data"/> to a running sum (native order, unfolded).</summary>
    public static ulong Add(ulong sum, ReadOnlySpan<byte> data)
    {
        var words = MemoryMarshal.Cast<byte, uint>(data);
        foreach (var word in words)
            sum += word;
        var rest = data[(words.Length * 4)..];
        if (rest.Length >= 2)
        {
            sum += MemoryMarshal.Read<ushort>(rest);
            rest = rest[2..];
        }
        if (rest.Length == 1)
            sum += BitConverter.IsLittleEndian ? rest[0] : (uint)rest[0] << 8; // padded with a zero byte
        return sum;
    }

    /// <summary>The TCP/UDP pseudo-header's contribution: addresses, protocol, transport length.</summary>
    public static ulong PseudoHeader(ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte protocol, int length)
    {
        var sum = Add(Add(0, source), destination);
        return sum + ToNative((ushort)protocol) + ToNative((ushort)length);
    }

    /// <summary>The checksum field's value (complemented, folded) to write big-endian.</summary>
    public static ushort Finish(ulong sum)
    {
        while (sum >> 16 != 0)
            sum = (sum & 0xffff) + (sum >> 16);
        var folded = (ushort)sum;
        if (BitConverter.IsLittleEndian)
            folded = BinaryPrimitives.ReverseEndianness(folded);
        return (ushort)~folded;
    }

    private static uint ToNative(ushort bigEndianValue) =>
        BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(bigEndianValue) : bigEndianValue;
}
