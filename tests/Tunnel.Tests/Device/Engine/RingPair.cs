using Tunnel.Device;

namespace Tunnel.Tests.Device.Engine;

/// <summary>An <see cref="IDeviceIo"/> that queues into preallocated slots and allocates nothing.</summary>
internal sealed class RingIo : IDeviceIo
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

/// <summary>
/// Two devices that know each other, joined through <see cref="RingIo"/>: the harness of the
/// zero-allocation tests (<see cref="DevicePair"/>'s recording network allocates per datagram,
/// which is exactly what those tests must not count).
/// </summary>
internal sealed class RingPair : IDisposable
{
    public RingPair()
    {
        A = new TunnelDevice(new DeviceOptions { Clock = Clock, Random = new Noise.SeededRandom(1) }, IoA);
        B = new TunnelDevice(new DeviceOptions { Clock = Clock, Random = new Noise.SeededRandom(2) }, IoB);
        byte[] key = new byte[32];
        byte[] pub = new byte[32];
        new Noise.SeededRandom(3).Fill(key);
        A.SetPrivateKey(key);
        new Noise.SeededRandom(4).Fill(key);
        B.SetPrivateKey(key);
        B.CopyPublicKey(pub);
        Peer peerB = A.AddPeer(pub);
        A.CopyPublicKey(pub);
        Peer peerA = B.AddPeer(pub);
        peerB.Endpoint = DevicePair.EndpointB;
        A.AllowedIps.Insert(DevicePair.AddressB, 32, peerB);
        B.AllowedIps.Insert(DevicePair.AddressA, 32, peerA);
    }

    public VirtualClock Clock { get; } = new();
    public RingIo IoA { get; } = new();
    public RingIo IoB { get; } = new();
    public TunnelDevice A { get; }
    public TunnelDevice B { get; }

    /// <summary>A sends <paramref name="packet"/>; everything on the wire is delivered both ways.</summary>
    public void AToB(byte[] packet)
    {
        A.SendPacket(packet);
        IoA.DrainTo(B, DevicePair.EndpointA);
        IoB.DrainTo(A, DevicePair.EndpointB);
    }

    /// <summary>B sends <paramref name="packet"/>; everything on the wire is delivered both ways.</summary>
    public void BToA(byte[] packet)
    {
        B.SendPacket(packet);
        IoB.DrainTo(A, DevicePair.EndpointB);
        IoA.DrainTo(B, DevicePair.EndpointA);
    }

    /// <summary>
    /// Runs <paramref name="round"/> 2,000 times to reach steady state (sessions up, pools filled),
    /// then returns what 10,000 more rounds allocate on this thread (see <see cref="AllocationProbe"/>:
    /// one warm and three measured batches, so 42,000 rounds in all).
    /// </summary>
    public static long SteadyStateAllocation(Action round)
    {
        for (int i = 0; i < 2_000; i++)
            round();
        return AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 10_000; i++)
                round();
        }, warmRounds: 1, measuredRounds: 3);
    }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}
