using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public class MessagesTests
{
    [Fact]
    public void Sizes_AndOffsets_MatchTheWhitepaper()
    {
        Assert.Equal(148, MessageInitiation.Size);
        Assert.Equal(MessageInitiation.Size, MessageInitiation.Mac2Offset + 16);
        Assert.Equal(32 + 48 + 28, MessageInitiation.NoiseLength);
        Assert.Equal(92, MessageResponse.Size);
        Assert.Equal(MessageResponse.Size, MessageResponse.Mac2Offset + 16);
        Assert.Equal(32 + 16, MessageResponse.NoiseLength);
        Assert.Equal(64, MessageCookieReply.Size);
        Assert.Equal(MessageCookieReply.Size, MessageCookieReply.CookieOffset + MessageCookieReply.EncryptedCookieSize);
        Assert.Equal(32, MessageTransport.MinimumSize);
        Assert.Equal(MessageInitiation.Mac1Offset, CookieConstants.Mac1Offset(148));
        Assert.Equal(MessageResponse.Mac1Offset, CookieConstants.Mac1Offset(92));
    }

    [Fact]
    public void TransportHeader_IsLittleEndian()
    {
        var message = new byte[32];
        MessageTransport.WriteHeader(message, 0x01020304, 0x1122334455667788);
        Assert.Equal(new byte[] { 4, 0, 0, 0, 4, 3, 2, 1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11 }, message[..16]);
        Assert.True(MessageTransport.IsWellFormed(message));
        Assert.Equal(0x01020304u, MessageTransport.ReceiverIndex(message));
        Assert.Equal(0x1122334455667788ul, MessageTransport.Counter(message));
        Assert.False(MessageTransport.IsWellFormed(message.AsSpan(0, 31)));
    }

    [Theory]
    [InlineData(0, 1420, 0)]      // keepalive
    [InlineData(1, 1420, 16)]
    [InlineData(16, 1420, 16)]
    [InlineData(17, 1420, 32)]
    [InlineData(1419, 1420, 1420)] // never beyond the MTU
    [InlineData(1420, 1420, 1420)]
    [InlineData(1000, 0, 1008)]    // no MTU known
    public void Padding_ToSixteenCappedAtMtu(int length, int mtu, int expected) =>
        Assert.Equal(expected, MessageTransport.PaddedLength(length, mtu));

    [Fact]
    public void Type_RequiresZeroReservedBytes()
    {
        Assert.Equal(MessageType.Initiation, MessageHeader.ReadType([1, 0, 0, 0]));
        Assert.NotEqual(MessageType.Initiation, MessageHeader.ReadType([1, 0, 1, 0]));
        Assert.Equal((MessageType)0, MessageHeader.ReadType([1, 0]));
    }
}
