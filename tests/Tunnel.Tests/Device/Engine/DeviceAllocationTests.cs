using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device.Engine;

/// <summary>The steady-state data path allocates nothing (measured on this thread).</summary>
public sealed class DeviceAllocationTests
{
    /// <summary>An <see cref="IDeviceIo"/> that queues into preallocated slots and allocates nothing.</summary>
    private sealed class RingIo : IDeviceIo
    {
        private readonly byte[][] _slots = Enumerable.Range(0, 64).Select(_ => new byte[2048]).ToArray();
        private readonly int[] _lengths = new int[64];
        private int _count;

        public int Delivered { get; private set; }

        public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to)
        {
            datagram.CopyTo(_slots[_count]);
            _lengths[_count++] = datagram.Length;
        }

        public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from) => Delivered++;

        public void DrainTo(TunnelDevice device, in Endpoint from)
        {
            for (int i = 0; i < _count; i++)
                device.ReceiveDatagram(_slots[i].AsSpan(0, _lengths[i]), from);
            _count = 0;
        }
    }

    [Fact]
    public void Ten_thousand_packets_each_way_allocate_nothing_after_warm_up()
    {
        var clock = new VirtualClock();
        var ioA = new RingIo();
        var ioB = new RingIo();
        using var a = new TunnelDevice(new DeviceOptions { Clock = clock, Random = new Noise.SeededRandom(1) }, ioA);
        using var b = new TunnelDevice(new DeviceOptions { Clock = clock, Random = new Noise.SeededRandom(2) }, ioB);
        byte[] key = new byte[32];
        byte[] pub = new byte[32];
        new Noise.SeededRandom(3).Fill(key);
        a.SetPrivateKey(key);
        new Noise.SeededRandom(4).Fill(key);
        b.SetPrivateKey(key);
        b.CopyPublicKey(pub);
        Peer peerB = a.AddPeer(pub);
        a.CopyPublicKey(pub);
        Peer peerA = b.AddPeer(pub);
        peerB.Endpoint = DevicePair.EndpointB;
        a.AllowedIps.Insert(DevicePair.AddressB, 32, peerB);
        b.AllowedIps.Insert(DevicePair.AddressA, 32, peerA);
        byte[] toB = DevicePair.Packet(DevicePair.AddressA, DevicePair.AddressB, 1, 1280);
        byte[] toA = DevicePair.Packet(DevicePair.AddressB, DevicePair.AddressA, 2, 1280);
        Endpoint fromA = DevicePair.EndpointA, fromB = DevicePair.EndpointB;

        void Round()
        {
            a.SendPacket(toB);
            ioA.DrainTo(b, fromA);
            ioB.DrainTo(a, fromB);
            b.SendPacket(toA);
            ioB.DrainTo(a, fromB);
            ioA.DrainTo(b, fromA);
        }

        for (int i = 0; i < 2_000; i++)
            Round();
        Assert.Equal(2_000, ioB.Delivered);

        long allocated = AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 10_000; i++)
                Round();
        }, warmRounds: 1, measuredRounds: 3);

        Assert.Equal(42_000, ioB.Delivered);
        Assert.Equal(42_000, ioA.Delivered);
        Assert.Equal(0, allocated);
    }
}
