using System.Security.Cryptography;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The receive side's batch: the transport messages of one recvmmsg are found their keypair in
/// arrival order, opened in place in the receive buffer by the <see cref="CryptoWorkers"/> in any
/// order, then committed in arrival order (replay window, the peer, the TUN device through the
/// <see cref="TcpCoalescer"/>), so a peer's packets reach the TUN device in the order they came and
/// the plaintext is copied once, by the coalescer. The plaintext is cleared from the receive
/// buffer once committed. One owner thread (the udp-receive one); allocates nothing per packet.
/// </summary>
internal sealed class OpenStage : ICryptoJobs
{
    /// <summary>A recvmmsg of 32 messages, each a GRO run of up to 64 datagrams, would be 2048; a
    /// batch that fills up is run early, in order.</summary>
    public const int MaxJobs = 512;

    private readonly InboundTransport[] _jobs = new InboundTransport[MaxJobs];
    private readonly int[] _messages = new int[MaxJobs];
    private readonly int[] _offsets = new int[MaxJobs];
    private readonly Endpoint[] _sources = new Endpoint[MaxJobs];
    private readonly TunnelDevice _device;
    private readonly CryptoWorkers? _workers;
    private readonly CryptoRound? _round;
    private UdpReceiveBatch? _batch;
    private int _count;

    /// <param name="workers">Null or one worker: every job on the calling thread.</param>
    public OpenStage(TunnelDevice device, CryptoWorkers? workers)
    {
        _device = device;
        if (workers is { Workers: > 1 })
        {
            _workers = workers;
            _round = workers.Register(this);
        }
    }

    /// <summary>
    /// Takes datagram <paramref name="offset"/>..+<paramref name="length"/> of message
    /// <paramref name="message"/> of <paramref name="batch"/> if it is a transport message (one
    /// that opens is delivered at <see cref="Run"/>; one that cannot is dropped). False: not a
    /// transport message, for <see cref="TunnelDevice.ReceiveDatagram"/>.
    /// </summary>
    public bool TryAdd(UdpReceiveBatch batch, int message, int offset, int length, in Endpoint from)
    {
        ReadOnlySpan<byte> datagram = batch.Data(message).Slice(offset, length);
        if (!MessageTransport.IsWellFormed(datagram))
            return false;
        if (_count == MaxJobs || (_batch is not null && !ReferenceEquals(_batch, batch)))
            Run();
        if (!_device.PrepareReceive(datagram, out _jobs[_count]))
            return true;
        _batch = batch;
        _messages[_count] = message;
        _offsets[_count] = offset;
        _sources[_count] = from;
        _count++;
        return true;
    }

    /// <summary>Opens what is held (with the workers when there are several), then delivers it in
    /// order; before the receive buffer is read into again.</summary>
    public void Run()
    {
        if (_count == 0)
            return;
        CryptoWorkers.Run(_workers, _round, this, _count);
        for (int i = 0; i < _count; i++)
        {
            Span<byte> message = Message(i);
            _device.CommitReceive(_jobs[i], message, _sources[i]);
            // Opened or not (a decryption that fails authentication may have written some).
            CryptographicOperations.ZeroMemory(message[MessageTransport.ContentOffset..^MessageTransport.TagSize]);
        }
        Array.Clear(_jobs, 0, _count); // no keypair stays reachable from here
        _count = 0;
        _batch = null;
    }

    public void RunJob(int index) => _device.OpenTransport(ref _jobs[index], Message(index));

    private Span<byte> Message(int index) => _batch!.Data(_messages[index]).Slice(_offsets[index], _jobs[index].MessageLength);
}
