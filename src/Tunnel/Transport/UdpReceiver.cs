using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The udp-receive thread's loop: datagrams from peers, handed to the engine; it follows the bind
/// across a rebind. One recvmmsg brings many (each message perhaps a GRO run of datagrams, cut
/// apart here); what the engine delivers from them is coalesced (<see cref="TcpCoalescer"/>) and
/// written to TUN once the whole batch is through.
/// </summary>
internal sealed class UdpReceiver(InterfaceIo io, TunnelDevice device, DataPathThreads threads)
{
    // Totals for the stop log: written by the receiving thread only, read after it was joined.
    public long Reads { get; private set; }
    public long Datagrams { get; private set; }
    public long Allocated { get; private set; }

    public void Run()
    {
        using var batch = new UdpReceiveBatch();
        io.BeginCoalescing(new TcpCoalescer());
        TransportAead.HoldKeysUntilScrub(); // scrubbed after each batch, below
        var start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!threads.Stopping)
            {
                var bind = io.Bind;
                var count = bind.ReceiveBatch(batch);
                if (count < 0)
                {
                    // Closed: either stopping (the loop ends) or swapped for a new socket (pick it up).
                    if (ReferenceEquals(bind, io.Bind) && !threads.Stopping)
                        threads.Wait(10);
                    continue;
                }
                Reads++;
                for (var i = 0; i < count; i++)
                {
                    var data = batch.Data(i);
                    if (data.IsEmpty || !EndpointAddress.TryRead(batch.Source(i), out var from))
                        continue;
                    var segmentSize = batch.SegmentSize(i);
                    for (var offset = 0; offset < data.Length; offset += segmentSize)
                    {
                        device.ReceiveDatagram(data.Slice(offset, Math.Min(segmentSize, data.Length - offset)), from);
                        Datagrams++;
                    }
                }
                io.FlushDelivered();
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
