using System.Buffers.Binary;

namespace Tunnel.Device;

/// <summary>The first byte of every WireGuard message, followed by three zero bytes.</summary>
public enum MessageType : uint
{
    Initiation = 1,
    Response = 2,
    CookieReply = 3,
    Transport = 4,
}

/// <summary>
/// Reading the type word shared by all messages. The type is a little-endian u32 whose three
/// upper bytes (the "reserved" bytes) must be zero, as the kernel and wireguard-go check.
/// </summary>
public static class MessageHeader
{
    public const int TypeSize = 4;

    /// <summary>The message type, or 0 if the datagram is too short to have one.</summary>
    public static MessageType ReadType(ReadOnlySpan<byte> message) =>
        message.Length < TypeSize ? 0 : (MessageType)BinaryPrimitives.ReadUInt32LittleEndian(message);

    public static void WriteType(Span<byte> message, MessageType type) =>
        BinaryPrimitives.WriteUInt32LittleEndian(message, (uint)type);

    public static uint ReadIndex(ReadOnlySpan<byte> message, int offset) =>
        BinaryPrimitives.ReadUInt32LittleEndian(message[offset..]);

    public static void WriteIndex(Span<byte> message, int offset, uint index) =>
        BinaryPrimitives.WriteUInt32LittleEndian(message[offset..], index);
}

/// <summary>
/// Handshake initiation, 148 bytes: type 1 + 3 reserved, sender index, unencrypted ephemeral (32),
/// encrypted static (32+16), encrypted timestamp (12+16), mac1 (16), mac2 (16).
/// </summary>
public static class MessageInitiation
{
    public const int Size = 148;
    public const int SenderOffset = 4;
    public const int EphemeralOffset = 8;
    public const int StaticOffset = 40;
    public const int TimestampOffset = 88;
    public const int Mac1Offset = 116;
    public const int Mac2Offset = 132;
    /// <summary>The Noise message A (ephemeral through encrypted timestamp).</summary>
    public const int NoiseOffset = EphemeralOffset;
    public const int NoiseLength = Mac1Offset - EphemeralOffset;

    public static bool IsWellFormed(ReadOnlySpan<byte> message) =>
        message.Length == Size && MessageHeader.ReadType(message) == MessageType.Initiation;

    public static uint SenderIndex(ReadOnlySpan<byte> message) => MessageHeader.ReadIndex(message, SenderOffset);
}

/// <summary>
/// Handshake response, 92 bytes: type 2 + 3 reserved, sender index, receiver index, unencrypted
/// ephemeral (32), encrypted nothing (0+16), mac1 (16), mac2 (16).
/// </summary>
public static class MessageResponse
{
    public const int Size = 92;
    public const int SenderOffset = 4;
    public const int ReceiverOffset = 8;
    public const int EphemeralOffset = 12;
    public const int EmptyOffset = 44;
    public const int Mac1Offset = 60;
    public const int Mac2Offset = 76;
    /// <summary>The Noise message B (ephemeral and encrypted empty payload).</summary>
    public const int NoiseOffset = EphemeralOffset;
    public const int NoiseLength = Mac1Offset - EphemeralOffset;

    public static bool IsWellFormed(ReadOnlySpan<byte> message) =>
        message.Length == Size && MessageHeader.ReadType(message) == MessageType.Response;

    public static uint SenderIndex(ReadOnlySpan<byte> message) => MessageHeader.ReadIndex(message, SenderOffset);
    public static uint ReceiverIndex(ReadOnlySpan<byte> message) => MessageHeader.ReadIndex(message, ReceiverOffset);
}

/// <summary>
/// Cookie reply, 64 bytes: type 3 + 3 reserved, receiver index, nonce (24), encrypted cookie (16+16).
/// </summary>
public static class MessageCookieReply
{
    public const int Size = 64;
    public const int ReceiverOffset = 4;
    public const int NonceOffset = 8;
    public const int NonceSize = 24;
    public const int CookieOffset = 32;
    public const int EncryptedCookieSize = 16 + 16;

    public static bool IsWellFormed(ReadOnlySpan<byte> message) =>
        message.Length == Size && MessageHeader.ReadType(message) == MessageType.CookieReply;

    public static uint ReceiverIndex(ReadOnlySpan<byte> message) => MessageHeader.ReadIndex(message, ReceiverOffset);
}

/// <summary>
/// Transport data: type 4 + 3 reserved, receiver index, counter (u64 little-endian, also the AEAD
/// nonce), then the encrypted packet padded to a multiple of 16 and its 16-byte tag. A keepalive
/// is an empty packet: 32 bytes on the wire.
/// </summary>
public static class MessageTransport
{
    public const int HeaderSize = 16;
    public const int ReceiverOffset = 4;
    public const int CounterOffset = 8;
    public const int ContentOffset = 16;
    public const int TagSize = 16;
    public const int PaddingMultiple = 16;
    /// <summary>Smallest valid transport message: a keepalive (header + tag).</summary>
    public const int MinimumSize = HeaderSize + TagSize;

    public static bool IsWellFormed(ReadOnlySpan<byte> message) =>
        message.Length >= MinimumSize && MessageHeader.ReadType(message) == MessageType.Transport;

    public static uint ReceiverIndex(ReadOnlySpan<byte> message) => MessageHeader.ReadIndex(message, ReceiverOffset);

    public static ulong Counter(ReadOnlySpan<byte> message) =>
        BinaryPrimitives.ReadUInt64LittleEndian(message[CounterOffset..]);

    public static void WriteHeader(Span<byte> message, uint receiverIndex, ulong counter)
    {
        MessageHeader.WriteType(message, MessageType.Transport);
        MessageHeader.WriteIndex(message, ReceiverOffset, receiverIndex);
        BinaryPrimitives.WriteUInt64LittleEndian(message[CounterOffset..], counter);
    }

    /// <summary>
    /// The plaintext length after padding: up to a multiple of 16 but never beyond the MTU (as
    /// wireguard-go's calculatePaddingSize), so a full-MTU packet is not pushed past it.
    /// <paramref name="mtu"/> 0 means no limit.
    /// </summary>
    public static int PaddedLength(int packetLength, int mtu)
    {
        int last = packetLength;
        if (mtu == 0)
            return (last + PaddingMultiple - 1) & ~(PaddingMultiple - 1);
        if (last > mtu)
            last %= mtu;
        int padded = (last + PaddingMultiple - 1) & ~(PaddingMultiple - 1);
        if (padded > mtu)
            padded = mtu;
        return packetLength + (padded - last);
    }

    /// <summary>Total wire size of a transport message carrying <paramref name="paddedLength"/> plaintext bytes.</summary>
    public static int MessageSize(int paddedLength) => HeaderSize + paddedLength + TagSize;
}
