using Microsoft.Extensions.Logging;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// Handshakes off the data path (wireguard-go's RoutineHandshake, the kernel's
/// wg_packet_handshake_receive_worker). On the udp-receive thread, <see cref="Admit"/> runs the
/// engine's cheap checks (mac1; under load mac2, and the per-source rate limiter) and queues what
/// passes, or what earns a cookie reply; the worker thread's <see cref="Run"/> does the
/// Diffie-Hellman part and makes and sends the cookie replies. Transport data never waits behind
/// a handshake or a cookie reply, and a full queue drops handshake messages only.
/// </summary>
internal sealed class HandshakeWorker(TunnelDevice device, HandshakeQueue queue, DataPathThreads threads, ILogger log)
{
    /// <summary>How long the worker sleeps on an empty queue before it looks at the stop flag again.</summary>
    private const int IdleWaitMilliseconds = 100;

    /// <summary>
    /// The worker's nice value: when a flood keeps it busy on a machine with few cores, the data
    /// threads (nice 0) get the CPU first; its own work only waits, and a legitimate handshake
    /// can wait (its initiator retries after REKEY_TIMEOUT anyway).
    /// </summary>
    public const int Nice = 5;

    private long _failures;

    // Written by the worker thread only; read after it was joined.
    public long Processed { get; private set; }

    public HandshakeQueue Queue => queue;

    /// <summary>Handshake messages dropped because handling them threw.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>The receive thread's half: the engine's cheap checks, then the queue (dropped when full).</summary>
    public void Admit(ReadOnlySpan<byte> message, in Endpoint from)
    {
        HandshakeAdmission work = device.AdmitHandshake(message, from, queue.Backlogged);
        if (work != HandshakeAdmission.Drop)
            queue.TryEnqueue(message, from, work);
    }

    /// <summary>The worker thread's loop, until the interface stops.</summary>
    public void Run()
    {
        if (OperatingSystem.IsLinux())
            LibC.SetPriority(LibC.PRIO_PROCESS, (uint)LibC.GetTid(), Nice); // best effort: at worst it runs at 0
        Span<byte> message = stackalloc byte[HandshakeQueue.SlotSize];
        while (!threads.Stopping)
        {
            if (!queue.TryDequeue(message, out int length, out Endpoint from, out HandshakeAdmission work, IdleWaitMilliseconds))
                continue;
            try
            {
                if (work == HandshakeAdmission.CookieReply)
                    device.SendCookieReply(message[..length], from);
                else
                    device.ReceiveHandshake(message[..length], from);
            }
            catch (Exception e)
            {
                // As UdpReceiver: once, then every 1000th, so a stream of them is not a log line each.
                if (Interlocked.Increment(ref _failures) % 1000 == 1)
                    log.LogError(e, "dropped a handshake message from {Endpoint} whose handling failed ({Failures} so far)", from, Failures);
            }
            Processed++;
        }
    }
}
