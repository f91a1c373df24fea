namespace Tunnel.Transport;

/// <summary>Where <see cref="TcpCoalescer"/> writes: the TUN device (<see cref="LinuxTun"/>), or a
/// test's list. Both methods may throw <see cref="IOException"/> for a packet the kernel refuses.</summary>
public interface ITunWriter
{
    /// <summary>One IP packet as it is (the device adds an empty virtio-net header if it uses one).</summary>
    bool Write(ReadOnlySpan<byte> packet);

    /// <summary>A packet behind its own virtio-net header.</summary>
    bool WriteFramed(ReadOnlySpan<byte> framed);
}
