using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public class Tai64NTests
{
    [Fact]
    public void Encoding_IsBigEndianFromTai64Base()
    {
        var stamp = Tai64N.FromDateTime(DateTimeOffset.UnixEpoch.AddSeconds(1));
        var bytes = new byte[12];
        stamp.WriteTo(bytes);
        Assert.Equal("400000000000000b00000000", Convert.ToHexStringLower(bytes));
        Assert.Equal(stamp, Tai64N.Read(bytes));
    }

    [Fact]
    public void Nanoseconds_AreWhitenedTo2Pow24()
    {
        var t = DateTimeOffset.UnixEpoch.AddSeconds(100).AddTicks(123_456_789 / 100);
        var stamp = Tai64N.FromDateTime(t);
        Assert.Equal(0u, stamp.Nanoseconds % (1u << 24));
        Assert.Equal(123_456_700u & ~((1u << 24) - 1), stamp.Nanoseconds);
        Assert.Equal(Tai64N.Base + 100, stamp.Seconds);
    }

    [Fact]
    public void Ordering_IsStrict()
    {
        var t = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var a = Tai64N.FromDateTime(t);
        var b = Tai64N.FromDateTime(t.AddMilliseconds(20));
        var c = Tai64N.FromDateTime(t.AddSeconds(1));
        Assert.True(b.After(a));
        Assert.True(c.After(b));
        Assert.False(a.After(a));
        Assert.False(a.After(c));
        // Within one whitening unit the stamps are equal, so a second one is not "after".
        Assert.False(Tai64N.FromDateTime(t.AddMilliseconds(1)).After(a));
    }

    [Fact]
    public void BeforeUnixEpoch_StillOrders()
    {
        var before = Tai64N.FromDateTime(DateTimeOffset.UnixEpoch.AddSeconds(-1.5));
        Assert.Equal(Tai64N.Base - 2, before.Seconds);
        Assert.True(Tai64N.FromDateTime(DateTimeOffset.UnixEpoch).After(before));
    }
}
