using System.Numerics;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

/// <summary>Each value checked against the whitepaper's definition, computed independently here.</summary>
public sealed class ConstantsTests
{
    [Fact]
    public void MessageCountLimits()
    {
        Assert.Equal(BigInteger.Pow(2, 60), new BigInteger(Constants.RekeyAfterMessages));
        Assert.Equal(BigInteger.Pow(2, 64) - BigInteger.Pow(2, 13) - 1, new BigInteger(Constants.RejectAfterMessages));
        Assert.Equal(18446744073709543423UL, Constants.RejectAfterMessages);
    }

    [Fact]
    public void Times()
    {
        Assert.Equal(TimeSpan.FromSeconds(120), Nanos(Constants.RekeyAfterTimeNanos));
        Assert.Equal(TimeSpan.FromSeconds(180), Nanos(Constants.RejectAfterTimeNanos));
        Assert.Equal(TimeSpan.FromSeconds(90), Nanos(Constants.RekeyAttemptTimeNanos));
        Assert.Equal(TimeSpan.FromSeconds(5), Nanos(Constants.RekeyTimeoutNanos));
        Assert.Equal(TimeSpan.FromMilliseconds(333), Nanos(Constants.RekeyTimeoutJitterMaxNanos));
        Assert.Equal(TimeSpan.FromSeconds(10), Nanos(Constants.KeepaliveTimeoutNanos));
        Assert.Equal(TimeSpan.FromSeconds(540), Nanos(Constants.ZeroKeyMaterialAfterNanos));
        Assert.Equal(TimeSpan.FromSeconds(120), Nanos(Constants.CookieRefreshTimeNanos));
        Assert.Equal(TimeSpan.FromSeconds(5), Nanos(Constants.CookieSecretLatencyNanos));
        Assert.Equal(18, Constants.MaxTimerHandshakes);
        Assert.Equal(50, Constants.InitiationsPerSecond);
        Assert.Equal(TimeSpan.FromMilliseconds(20), Nanos(Constants.InitiationMinIntervalNanos));
    }

    [Fact]
    public void ReplayWindow()
    {
        Assert.Equal(8192, Constants.CounterBitsTotal);
        Assert.Equal(8128, Constants.CounterWindowSize);
    }

    [Fact]
    public void MessageSizesAreTheSumsOfTheirFields()
    {
        const int header = 4, index = 4, key = 32, tag = 16, mac = 16;
        Assert.Equal(header + index + key + (key + tag) + (12 + tag) + mac + mac, Constants.MessageInitiationSize);
        Assert.Equal(148, Constants.MessageInitiationSize);
        Assert.Equal(header + index + index + key + (0 + tag) + mac + mac, Constants.MessageResponseSize);
        Assert.Equal(92, Constants.MessageResponseSize);
        Assert.Equal(header + index + 24 + (16 + tag), Constants.MessageCookieReplySize);
        Assert.Equal(64, Constants.MessageCookieReplySize);
        Assert.Equal(header + index + 8, Constants.MessageTransportHeaderSize);
        Assert.Equal(32, Constants.MessageTransportMinimumSize);
        Assert.Equal(16, Constants.MessagePaddingMultiple);
        Assert.Equal((1u, 2u, 3u, 4u), (Constants.MessageTypeInitiation, Constants.MessageTypeResponse,
            Constants.MessageTypeCookieReply, Constants.MessageTypeTransport));
    }

    [Fact]
    public void QueueLimitsAreTheKernels()
    {
        Assert.Equal(1024, Constants.MaxQueuedPackets);
        Assert.Equal(128, Constants.MaxStagedPackets);
        Assert.Equal(4096, Constants.MaxQueuedIncomingHandshakes);
        Assert.Equal(1 << 20, Constants.MaxPeersPerDevice);
    }

    private static TimeSpan Nanos(long nanos) => TimeSpan.FromTicks(nanos / 100);
}
