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

    /// <summary>A decrypted, authenticated and routed inner IP packet for the TUN device.</summary>
    void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from);
}
