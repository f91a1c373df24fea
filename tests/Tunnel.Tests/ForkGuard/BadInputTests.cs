using ForkNotify;
using Tunnel.Device;
using Tunnel.Tests.Device.Engine;
using Xunit;

namespace Tunnel.Tests.Guard;

/// <summary>With the guard on, bad input is still dropped without a trace, and the guard's callback never fails the chain.</summary>
public sealed class BadInputTests
{
    [Theory]
    [InlineData(ForkGuardMode.Notifier)]
    [InlineData(ForkGuardMode.HotPath)]
    [InlineData(ForkGuardMode.Both)]
    public void Garbage_datagrams_and_packets_leave_the_state_unchanged(ForkGuardMode mode)
    {
        using var g = new GuardedPair(mode);
        g.Pair.Handshake();
        g.Pair.Pump();
        byte[] digest = g.A.StateDigest();
        var random = new Random(3);
        for (int i = 0; i < 2_000; i++)
        {
            byte[] junk = new byte[random.Next(0, 200)];
            random.NextBytes(junk);
            if (junk.Length >= 4 && i % 2 == 0)
                junk[0] = (byte)random.Next(1, 5); // plausible types too
            if (junk.Length >= 4)
                junk[1] = junk[2] = junk[3] = 0;
            g.A.ReceiveDatagram(junk, DevicePair.EndpointB);
            g.A.SendPacket(junk.AsSpan(0, Math.Min(junk.Length, 19))); // too short to route
        }
        Assert.Equal(digest, g.A.StateDigest());
        Assert.Empty(g.Pair.IoA.Sent);
    }

    [Fact]
    public void Unknown_actions_on_the_chain_are_ignored()
    {
        using var g = new GuardedPair(ForkGuardMode.Both);
        g.Pair.Handshake();
        byte[] digest = g.A.StateDigest();
        foreach (ulong action in new ulong[] { 0, 8, 0x8000, ulong.MaxValue })
            Assert.Equal(NotifyResult.Done, g.Kernel.Pm.Chain.CallChain(action, "data"));
        Assert.Equal(digest, g.A.StateDigest());
    }

    [Fact]
    public void The_callback_reports_ok_even_when_the_device_is_gone()
    {
        var g = new GuardedPair(ForkGuardMode.Both);
        g.Pair.Handshake();
        g.Pair.Dispose(); // the device is disposed under the guard
        g.Fork();
        Assert.Equal(NotifyResult.Ok, g.Kernel.Pm.CallChain(PmEvent.SuspendPrepare));
        Assert.Equal(0, g.Kernel.Watchers.OutdatedCount);
        g.Guard.Dispose();
    }
}
