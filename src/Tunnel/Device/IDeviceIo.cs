namespace Tunnel.Device;

/// <summary>
/// What the engine emits. The daemon implements it with the UDP socket and the TUN device, tests
/// with in-memory queues. Called synchronously, never under an engine lock; the span is only valid
/// during the call, so an implementation that queues must copy it.
/// </summary>
public interface IDeviceIo
{
    /// <summary>A WireGuard message for the network.</summary>
    void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to);

    /// <summary>
    /// A WireGuard message whose keys the hot-path check has just found current at pull-counter
    /// value <paramref name="generation"/>. An implementation that holds datagrams before they
    /// leave (UDP GSO batching) compares the counter with this value again just before the send,
    /// rather than reading it anew: a snapshot between the engine's check and the hold would
    /// otherwise pass.
    /// </summary>
    void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to, ulong generation) => SendDatagram(datagram, to);

    /// <summary>A decrypted, authenticated and routed inner IP packet for the TUN device.</summary>
    void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from);
}
