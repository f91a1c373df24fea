using Microsoft.Extensions.Logging;
using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>Where a received datagram goes: the engine's <see cref="TunnelDevice.ReceiveDatagram"/>.</summary>
internal delegate void DatagramHandler(ReadOnlySpan<byte> datagram, in Endpoint from);

/// <summary>
/// The udp-receive thread's loop: datagrams from peers, handed to the engine; it follows the bind
/// across a rebind. One recvmmsg brings many (each message perhaps a GRO run of datagrams, cut
/// apart here); what the engine delivers from them is coalesced (<see cref="TcpCoalescer"/>) and
/// written to TUN once the whole batch is through.
/// <para>A datagram whose handling throws is dropped, counted and logged now and then; the rest of
/// its batch and the loop go on at once (a peer must not be able to slow the receive path by
/// sending what trips a bug).</para>
/// </summary>
/// <param name="coalescer">For a TUN device with virtio-net headers, what this thread delivers
/// itself (without <paramref name="decrypt"/>); null writes packets one by one.</param>
/// <param name="handshakes">Where handshake messages go (checked, then queued for the worker);
/// null hands them to <paramref name="receive"/> like the rest.</param>
/// <param name="decrypt">Gives the buffer for each read and takes its transport messages (opened in
/// place, in parallel, delivered in order, with its own coalescer); null hands every datagram to
/// <paramref name="receive"/>.</param>
internal sealed class UdpReceiver(InterfaceIo io, DatagramHandler receive, TcpCoalescer? coalescer,
    DataPathThreads threads, ILogger log, HandshakeWorker? handshakes = null, OpenStage? decrypt = null)
{
    private long _failures;

    // Totals for the stop log: written by the receiving thread only, read after it was joined.
    public long Reads { get; private set; }
    public long Datagrams { get; private set; }
    public long Allocated { get; private set; }

    /// <summary>Datagrams dropped because handling them threw (any thread may read it).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    public void Run()
    {
        // With a decrypt stage, each read goes into the buffer of its next free slot, so this
        // thread reads on while earlier reads are opened and delivered.
        using var own = decrypt is null ? new UdpReceiveBatch() : null;
        if (coalescer is not null)
            io.BeginCoalescing(coalescer);
        TransportAead.HoldKeysUntilScrub(); // scrubbed after each batch, below
        var start = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            while (!threads.Stopping)
            {
                var bind = io.Bind;
                var batch = decrypt?.NextBuffer() ?? own!;
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
                    from = from.WithSource(batch.LocalAddress(i), batch.LocalIfIndex(i));
                    var segmentSize = batch.SegmentSize(i);
                    for (var offset = 0; offset < data.Length; offset += segmentSize)
                    {
                        var length = Math.Min(segmentSize, data.Length - offset);
                        if (decrypt is null || !decrypt.TryAdd(batch, i, offset, length, from))
                            Receive(data.Slice(offset, length), from);
                        Datagrams++;
                    }
                }
                decrypt?.Run(); // opened and delivered meanwhile; its buffer is not read into until then
                io.FlushDelivered();
                TransportAead.ScrubThreadKeys();
            }
        }
        finally
        {
            decrypt?.Drain(); // the batches in flight are delivered before the loop ends
            TransportAead.ScrubThreadKeys();
            Allocated += GC.GetAllocatedBytesForCurrentThread() - start;
        }
    }

    /// <summary>One datagram into the engine; a failure drops it alone.</summary>
    private void Receive(ReadOnlySpan<byte> datagram, in Endpoint from)
    {
        try
        {
            // Transport data stays on this thread; a handshake's Diffie-Hellman must not hold it up.
            if (handshakes is not null && TunnelDevice.IsHandshakeMessage(datagram))
                handshakes.Admit(datagram, from);
            else
                receive(datagram, from);
        }
        catch (Exception e)
        {
            // Once, then every 1000th: a stream of such datagrams must not become one log line each.
            if (Interlocked.Increment(ref _failures) % 1000 == 1)
                log.LogError(e, "dropped a datagram from {Endpoint} whose handling failed ({Failures} so far)", from, Failures);
        }
    }
}
