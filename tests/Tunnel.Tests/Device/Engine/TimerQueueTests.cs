using Tunnel.Device;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>
/// Issue 12: the timer queue holds only the peers with an armed deadline, so idle peers cost a
/// tick nothing; a deadline moved later leaves the peer where it was (lazy), yet
/// NextDeadlineNanos stays exact and the timer fires at the later time, not the earlier one.
/// </summary>
public sealed class TimerQueueTests
{
    private static (TunnelDevice Device, RecordingIo Io, VirtualClock Clock, Peer[] Peers) Device(int peers)
    {
        var clock = new VirtualClock();
        var io = new RecordingIo();
        var device = new TunnelDevice(new DeviceOptions { Clock = clock, Random = new SeededRandom(9) }, io);
        var keys = new SeededRandom(10);
        byte[] key = new byte[32];
        keys.Fill(key);
        device.SetPrivateKey(key);
        var list = new Peer[peers];
        for (int i = 0; i < peers; i++)
        {
            keys.Fill(key);
            list[i] = device.AddPeer(key);
            list[i].Endpoint = DevicePair.EndpointB;
        }
        return (device, io, clock, list);
    }

    [Fact]
    public void Idle_peers_are_not_queued_and_an_armed_one_is()
    {
        var (device, _, _, peers) = Device(1_000);
        using (device)
        {
            Assert.Equal(0, device.Timers.Count);
            Assert.Equal(long.MaxValue, device.NextDeadlineNanos);
            peers[500].PersistentKeepaliveInterval = 25;
            Assert.Equal(1, device.Timers.Count);
            peers[500].PersistentKeepaliveInterval = 0;
            Assert.Equal(long.MaxValue, device.NextDeadlineNanos);
            Assert.Equal(0, device.Timers.Count); // the stale entry went when it was looked at
        }
    }

    [Fact]
    public void A_deadline_moved_later_fires_at_the_later_time_and_NextDeadline_says_so()
    {
        var (device, io, clock, peers) = Device(3);
        using (device)
        {
            long start = clock.MonotonicNanos;
            peers[1].PersistentKeepaliveInterval = 10; // queued at +10 s
            peers[1].PersistentKeepaliveInterval = 30; // moved later: not re-queued
            peers[2].PersistentKeepaliveInterval = 20;
            Assert.Equal(start + 20 * Constants.NanosPerSecond, device.NextDeadlineNanos);

            clock.Advance(TimeSpan.FromSeconds(10));
            device.Tick();
            Assert.Empty(io.Sent); // nothing at the stale +10 s
            clock.Advance(TimeSpan.FromSeconds(10));
            device.Tick();
            Assert.Single(io.Sent); // peer 2 at +20 s (an initiation: no session yet)
            Assert.NotEqual(0u, peers[2].HandshakeIndex);
            Assert.Equal(0u, peers[1].HandshakeIndex);
            Assert.Equal(start + 25 * Constants.NanosPerSecond, device.NextDeadlineNanos, 
                new ToleranceComparer(Constants.RekeyTimeoutJitterMaxNanos)); // peer 2's retransmit
            clock.Advance(TimeSpan.FromSeconds(10));
            device.Tick();
            Assert.NotEqual(0u, peers[1].HandshakeIndex); // peer 1 at +30 s
        }
    }

    private sealed class ToleranceComparer(long tolerance) : IEqualityComparer<long>
    {
        public bool Equals(long x, long y) => Math.Abs(x - y) <= tolerance;
        public int GetHashCode(long value) => 0;
    }

    [Fact]
    public void A_deadline_moved_earlier_is_queued_earlier()
    {
        var (device, io, clock, peers) = Device(2);
        using (device)
        {
            long start = clock.MonotonicNanos;
            peers[0].PersistentKeepaliveInterval = 60;
            peers[0].PersistentKeepaliveInterval = 5;
            Assert.Equal(start + 5 * Constants.NanosPerSecond, device.NextDeadlineNanos);
            clock.Advance(TimeSpan.FromSeconds(5));
            device.Tick();
            Assert.Single(io.Sent);
        }
    }
}
