using System.Buffers.Binary;

namespace Tunnel.Transport;

/// <summary>
/// The <c>struct virtio_net_hdr</c> that prefixes every read and write on a TUN device opened with
/// IFF_VNET_HDR (linux/virtio_net.h, little-endian on the hosts we run on): how the kernel asks us
/// to finish a packet it handed over unfinished, a TSO "super-packet" to cut into MSS-sized
/// segments (<see cref="GsoType"/>, <see cref="GsoSize"/>) or a checksum to fill in
/// (<see cref="NeedsChecksum"/>, <see cref="ChecksumStart"/>, <see cref="ChecksumOffset"/>).
/// </summary>
internal readonly struct VirtioNetHeader
{
    public const int Size = 10;

    public const byte FlagNeedsChecksum = 1;
    public const byte GsoNone = 0;
    public const byte GsoTcpV4 = 1;
    public const byte GsoTcpV6 = 4;
    private const byte GsoEcn = 0x80;

    public byte Flags { get; init; }
    /// <summary>The GSO type without the ECN bit (which only says CWR may be set).</summary>
    public byte GsoType { get; init; }
    public ushort HeaderLength { get; init; }
    public ushort GsoSize { get; init; }
    public ushort ChecksumStart { get; init; }
    public ushort ChecksumOffset { get; init; }

    public bool NeedsChecksum => (Flags & FlagNeedsChecksum) != 0;

    public static VirtioNetHeader Read(ReadOnlySpan<byte> bytes) => new()
    {
        Flags = bytes[0],
        GsoType = (byte)(bytes[1] & ~GsoEcn),
        HeaderLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]),
        GsoSize = BinaryPrimitives.ReadUInt16LittleEndian(bytes[4..]),
        ChecksumStart = BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]),
        ChecksumOffset = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]),
    };
}
