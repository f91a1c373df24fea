using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

/// <summary>
/// The relations between the protocol's constants that the engine relies on, and what they do at
/// their boundaries. The values themselves are the whitepaper's; each is written once, in
/// Constants.cs, and the engine tests (timers, keypairs, cookies, replay) show them at work.
/// </summary>
public sealed class ConstantsTests
{
    [Fact]
    public void A_keypair_is_rekeyed_well_before_it_is_rejected()
    {
        // By messages: the rekey trigger leaves room for the new handshake.
        Assert.True(Constants.RekeyAfterMessages < Constants.RejectAfterMessages / 2);
        // By time: the initiator rekeys at REKEY_AFTER_TIME; its last-minute rekey on receive
        // (REJECT - KEEPALIVE - REKEY_TIMEOUT) comes later, and still before the session dies.
        long lastMinute = Constants.RejectAfterTimeNanos - Constants.KeepaliveTimeoutNanos - Constants.RekeyTimeoutNanos;
        Assert.InRange(lastMinute, Constants.RekeyAfterTimeNanos + 1, Constants.RejectAfterTimeNanos - 1);
        Assert.True(Constants.ZeroKeyMaterialAfterNanos > Constants.RejectAfterTimeNanos);
    }

    [Fact]
    public void Handshake_retries_fill_REKEY_ATTEMPT_TIME()
    {
        Assert.Equal(Constants.RekeyAttemptTimeNanos, Constants.MaxTimerHandshakes * Constants.RekeyTimeoutNanos);
        Assert.True(Constants.RekeyTimeoutJitterMaxNanos < Constants.RekeyTimeoutNanos);
    }

    [Fact]
    public void Our_respacing_is_wider_than_the_responders_flood_limit()
    {
        Assert.True(Constants.InitiationRespacingNanos > Constants.InitiationMinIntervalNanos);
        Assert.Equal(Constants.NanosPerSecond, Constants.InitiationMinIntervalNanos * Constants.InitiationsPerSecond);
        Assert.Equal(TunnelDevice.ToTimeSpan(Constants.InitiationMinIntervalNanos), NoiseProtocol.MinInitiationInterval);
    }

    [Fact]
    public void A_received_cookie_expires_before_the_secret_that_made_it()
    {
        Assert.True(CookieConstants.CookieValidity < CookieConstants.SecretMaxAge);
        Assert.Equal(TunnelDevice.ToTimeSpan(Constants.CookieSecretLatencyNanos),
            CookieConstants.SecretMaxAge - CookieConstants.CookieValidity);
    }

    [Fact]
    public void Replay_window_works_up_to_REJECT_AFTER_MESSAGES_without_overflow()
    {
        // The ring is a power of two words, and the window plus the last counter fits in a ulong.
        Assert.Equal(0, Constants.CounterBitsTotal / 64 & (Constants.CounterBitsTotal / 64 - 1));
        Assert.True(ulong.MaxValue - Constants.RejectAfterMessages >= Constants.CounterWindowSize);

        var filter = new ReplayFilter();
        Assert.True(filter.ValidateCounter(Constants.RejectAfterMessages - 1, Constants.RejectAfterMessages));
        Assert.False(filter.ValidateCounter(Constants.RejectAfterMessages, Constants.RejectAfterMessages));
        Assert.False(filter.ValidateCounter(ulong.MaxValue, Constants.RejectAfterMessages));
        ulong oldest = Constants.RejectAfterMessages - 1 - Constants.CounterWindowSize;
        Assert.True(filter.ValidateCounter(oldest, Constants.RejectAfterMessages));
        Assert.False(filter.ValidateCounter(oldest - 1, Constants.RejectAfterMessages));
    }
}
