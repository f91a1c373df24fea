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
/// <param name="workers">Seal the messages of reads in parallel while this thread reads the next;
/// null: on this thread, each read sent before the next.</param>
internal sealed class TunReader(LinuxTun tun, InterfaceIo io, TunnelDevice device, DataPathThreads threads,
    Action<string> onGone, CryptoWorkers? workers = null)
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
        var batch = new UdpSendBatch();
        // This thread's own sends (a handshake initiation a packet starts) leave at once; the
        // stage's batches go through `batch` on whichever thread commits them.
        var stage = new SealStage(device, io, batch, workers);
        TransportAead.HoldKeysUntilScrub(); // scrubbed after each read, below
        var start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!threads.Stopping)
            {
                if (!tun.HasVnetHeader)
                {
                    // Read straight into the message's place: no copy at all on this path.
                    var length = tun.Read(stage.NextPacket(MaxPacketSize));
                    if (length == 0)
                    {
                        OnReadEnd();
                        return;
                    }
                    Reads++;
                    stage.Add(length);
                    stage.Run();
                    TransportAead.ScrubThreadKeys();
                    Packets++;
                    continue;
                }
                var readLength = tun.Read(read);
                if (readLength == 0)
                {
                    OnReadEnd();
                    return;
                }
                Reads++;
                if (readLength < VirtioNetHeader.Size)
                    continue;
                var header = VirtioNetHeader.Read(read);
                var segments = new TsoSegments(read.AsSpan(VirtioNetHeader.Size, readLength - VirtioNetHeader.Size), header);
                while (true)
                {
                    var segment = stage.NextPacket(segments.MaxLength);
                    if (!segments.Next(segment, out var segmentLength))
                        break;
                    stage.Add(segmentLength);
                    Packets++;
                }
                stage.Run();
                TransportAead.ScrubThreadKeys();
            }
        }
        finally
        {
            stage.Dispose(); // the batches in flight are sent (or dropped) before the loop ends
            TransportAead.ScrubThreadKeys();
            Allocated += GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }

    private void OnReadEnd()
    {
        if (tun.Gone is { } why)
            onGone(why);
    }
}
