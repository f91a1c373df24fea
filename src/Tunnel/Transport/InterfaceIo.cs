using System.Net;
using System.Net.Sockets;
using ForkNotify;
using Microsoft.Extensions.Logging;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// What the engine emits, carried out on the real devices: datagrams leave through the current
/// <see cref="UdpBind"/>, decrypted packets go into the TUN. Called on any data-path thread; each
/// thread writes destinations into its own reused <see cref="SocketAddress"/>, so sending
/// allocates nothing. The bind can be swapped under it (a UAPI <c>listen_port</c>): a datagram
/// that races the swap may be lost, which UDP and the protocol's timers already allow for.
/// A thread that has called <see cref="BeginBatch"/> collects its datagrams into that
/// <see cref="UdpSendBatch"/> until <see cref="FlushBatch"/> (whichever thread commits a batch of
/// the TUN reader's, for the length of that commit).
/// </summary>
internal sealed class InterfaceIo(LinuxTun tun, UdpBind bind, ILogger log) : IDeviceIo
{
    [ThreadStatic]
    private static SocketAddress? t_destination6;

    [ThreadStatic]
    private static SocketAddress? t_destination4;

    [ThreadStatic]
    private static UdpSendBatch? t_batch;

    [ThreadStatic]
    private static TcpCoalescer? t_coalescer;

    private UdpBind _bind = bind;
    private TunnelDevice? _device;
    private long _staleBatchDrops;
    private long _tunWriteErrors;

    public UdpBind Bind
    {
        get => Volatile.Read(ref _bind);
        set => Volatile.Write(ref _bind, value);
    }

    /// <summary>The engine, once created: its fork-guard counter guards held datagrams.</summary>
    public TunnelDevice? Device
    {
        get => Volatile.Read(ref _device);
        set => Volatile.Write(ref _device, value);
    }

    /// <summary>The fork guard's hot-path counter, if the engine has one.</summary>
    public IGenerationCounter? GenerationCounter => Device?.Fork.Counter;

    /// <summary>Datagrams a <see cref="UdpSendBatch"/> dropped because the VM generation moved while it held them.</summary>
    public long StaleBatchDrops => Interlocked.Read(ref _staleBatchDrops);

    internal void CountStaleBatchDrop(int datagrams) => Interlocked.Add(ref _staleBatchDrops, datagrams);

    /// <summary>From now on this thread's datagrams wait in <paramref name="batch"/> (null: none,
    /// each leaves at once) for <see cref="FlushBatch"/>; returns the one it had, to put back.</summary>
    public static UdpSendBatch? BeginBatch(UdpSendBatch? batch)
    {
        UdpSendBatch? outer = t_batch;
        t_batch = batch;
        return outer;
    }

    /// <summary>From now on this thread's delivered packets wait in <paramref name="coalescer"/>
    /// for <see cref="FlushDelivered"/> (when the TUN device takes virtio-net headers; null:
    /// each is written at once); returns the one it had, to put back.</summary>
    public TcpCoalescer? BeginCoalescing(TcpCoalescer? coalescer)
    {
        TcpCoalescer? outer = t_coalescer;
        t_coalescer = tun.HasVnetHeader ? coalescer : null;
        return outer;
    }

    /// <summary>Writes what this thread's coalescer holds.</summary>
    public void FlushDelivered()
    {
        if (t_coalescer is not { } coalescer)
            return;
        try
        {
            coalescer.Flush(tun);
        }
        catch (IOException e)
        {
            CountWriteError(e);
        }
    }

    /// <summary>Sends what this thread's batch holds.</summary>
    public void FlushBatch() => t_batch?.Flush(this);

    public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        if (t_batch is { } batch)
            batch.Add(this, datagram, to, GenerationCounter?.Read() ?? 0);
        else
            SendNow(datagram, to);
    }

    /// <summary>A message whose keys the engine just found current at <paramref name="generation"/>:
    /// a batch holding it checks that value again before the send.</summary>
    public void SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to, ulong generation)
    {
        if (t_batch is { } batch)
            batch.Add(this, datagram, to, generation);
        else
            SendNow(datagram, to);
    }

    /// <summary>Several datagrams of <paramref name="segmentSize"/> bytes (the last may be
    /// shorter) to one destination in one GSO send. False if they did not leave;
    /// <paramref name="unsupported"/> then says whether the socket refuses GSO itself.</summary>
    public bool SendSegments(ReadOnlySpan<byte> datagrams, int segmentSize, in Endpoint to, out bool unsupported)
    {
        unsupported = false;
        var bind = Bind;
        var destination = Destination(bind.AddressFamily);
        return EndpointAddress.TryWrite(to, bind.AddressFamily, destination)
               && bind.SendSegments(datagrams, segmentSize, destination, to, out unsupported);
    }

    private static SocketAddress Destination(AddressFamily family) =>
        family == AddressFamily.InterNetworkV6
            ? t_destination6 ??= new SocketAddress(AddressFamily.InterNetworkV6)
            : t_destination4 ??= new SocketAddress(AddressFamily.InterNetwork);

    /// <summary>One datagram, at once.</summary>
    public void SendNow(ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        var bind = Bind;
        var destination = Destination(bind.AddressFamily);
        if (EndpointAddress.TryWrite(to, bind.AddressFamily, destination))
            bind.Send(datagram, destination, to);
    }

    public void DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from)
    {
        try
        {
            if (t_coalescer is { } coalescer)
                coalescer.Add(tun, ipPacket);
            else
                tun.Write(ipPacket);
        }
        catch (IOException e)
        {
            CountWriteError(e);
        }
    }

    /// <summary>The kernel refused one packet (e.g. EINVAL for a malformed header): it is dropped;
    /// say so once in a while rather than once per packet.</summary>
    private void CountWriteError(IOException e)
    {
        if (Interlocked.Increment(ref _tunWriteErrors) % 1000 == 1)
            log.LogWarning("dropped a packet the TUN device refused: {Error}", e.Message);
    }
}
