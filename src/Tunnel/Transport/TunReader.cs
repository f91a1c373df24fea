using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The tun-read thread's loop: packets the kernel routed into the tunnel, handed to the engine to
/// encrypt. With offload a read is a TSO packet behind its virtio-net header, cut into segments
/// (<see cref="TsoSegments"/>); the datagrams one read yields leave together as a UDP GSO send
/// (<see cref="UdpSendBatch"/>).
/// </summary>
/// <param name="onGone">Called on this thread once the interface is gone (<see cref="LinuxTun.Gone"/>);
/// it returns only when the threads stop.</param>
internal sealed class TunReader(LinuxTun tun, InterfaceIo io, TunnelDevice device, DataPathThreads threads,
    Action<string> onGone)
{
    /// <summary>Largest IP packet a TUN read can return (the IPv4/IPv6 length fields' limit).</summary>
    private const int MaxPacketSize = 65535;

    /// <summary>A TUN read with offload: a TSO packet behind its virtio-net header.</summary>
    private const int MaxTunReadSize = MaxPacketSize + VirtioNetHeader.Size;

    // Totals for the stop log: written by the reading thread only, read after it was joined.
    public long Reads { get; private set; }
    public long Packets { get; private set; }
    public long Allocated { get; private set; }

    public void Run()
    {
        var read = new byte[MaxTunReadSize];
        var segment = new byte[MaxPacketSize];
        InterfaceIo.BeginBatch(new UdpSendBatch());
        TransportAead.HoldKeysUntilScrub(); // scrubbed after each read, below
        var start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!threads.Stopping)
            {
                var length = tun.Read(read);
                if (length == 0)
                {
                    if (tun.Gone is { } why)
                        onGone(why);
                    return;
                }
                Reads++;
                if (!tun.HasVnetHeader)
                {
                    device.SendPacket(read.AsSpan(0, length));
                    io.FlushBatch();
                    TransportAead.ScrubThreadKeys();
                    Packets++;
                    continue;
                }
                if (length < VirtioNetHeader.Size)
                    continue;
                var header = VirtioNetHeader.Read(read);
                var segments = new TsoSegments(read.AsSpan(VirtioNetHeader.Size, length - VirtioNetHeader.Size), header);
                while (segments.Next(segment, out var segmentLength))
                {
                    device.SendPacket(segment.AsSpan(0, segmentLength));
                    Packets++;
                }
                io.FlushBatch();
                TransportAead.ScrubThreadKeys();
            }
        }
        finally
        {
            TransportAead.ScrubThreadKeys();
            Allocated += GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }
}
