using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>The steady-state data path allocates nothing (measured on this thread).</summary>
public sealed class DeviceAllocationTests
{
    [Fact]
    public void Ten_thousand_packets_each_way_allocate_nothing_after_warm_up()
    {
        using var pair = new RingPair();
        byte[] toB = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 1280);
        byte[] toA = DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 1280);
        RingIo ioA = pair.IoA, ioB = pair.IoB;

        void Round()
        {
            pair.AToB(toB);
            pair.BToA(toA);
        }

        long allocated = RingPair.SteadyStateAllocation(Round);

        Assert.Equal(42_000, ioB.Delivered);
        Assert.Equal(42_000, ioA.Delivered);
        Assert.Equal(0, allocated);
    }
}
