using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>
/// Peer B, outside the VM: a plain <see cref="TunnelDevice"/> on the wire that answers every data
/// packet it receives with one of the same number. It knows A's public key but not its endpoint,
/// so it answers whichever clone last authenticated (roaming), as a real server would.
/// </summary>
internal sealed class PeerBHost : IDeviceIo, IDisposable
{
    private readonly IScheduler _host;
    private readonly Wire _wire;
    private readonly byte[] _reply = new byte[TrafficPacket.Size];
    private bool _disposed;

    public PeerBHost(IScheduler host, Wire wire, ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> publicKeyA, ulong seed)
    {
        _host = host;
        _wire = wire;
        Device = new TunnelDevice(new DeviceOptions
        {
            Clock = new SchedulerClock(host),
            Random = new DeterministicEntropy(seed),
            Name = "peer-b",
        }, this);
        Endpoint = wire.Attach("B", host, (datagram, from) => Device.ReceiveDatagram(datagram, from));
        Device.SetPrivateKey(privateKey);
        Peer a = Device.AddPeer(publicKeyA);
        Device.AllowedIps.Insert(TrafficPacket.AddressA, 32, a);
        _host.Schedule(PeerAWorkload.TickInterval, Tick);
    }

    public TunnelDevice Device { get; }

    public Endpoint Endpoint { get; }

    public long PacketsReceived { get; private set; }

    private void Tick()
    {
        if (_disposed)
            return;
        Device.Tick();
        _host.Schedule(PeerAWorkload.TickInterval, Tick);
    }

    void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to) => _wire.Send(Endpoint, datagram, to);

    void IDeviceIo.DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from)
    {
        if (!TrafficPacket.TryRead(ipPacket, out uint sequence, out ushort tag))
            return;
        PacketsReceived++;
        // Answered as a separate event: the device is in the middle of its receive path.
        _host.Schedule(TimeSpan.Zero, () =>
        {
            if (_disposed)
                return;
            TrafficPacket.Write(_reply, TrafficPacket.AddressB, TrafficPacket.AddressA, sequence, tag);
            Device.SendPacket(_reply);
        });
    }

    public void Dispose()
    {
        _disposed = true;
        Device.Dispose();
    }
}
