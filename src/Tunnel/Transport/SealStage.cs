using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The send side's batch: the inner packets of one TUN read (the segments of a TSO packet) are
/// written straight into one buffer where each becomes its transport message in place, prepared
/// in order by the reading thread (route, keypair, nonce), sealed by the <see cref="CryptoWorkers"/>
/// in any order, and committed in the order they were read (the hot-path check, then the
/// <see cref="UdpSendBatch"/>, which sends them from this buffer as one GSO send). So a packet is
/// copied once on its way (out of the TUN read, or not at all without offload) and a peer's
/// packets leave in the order they came. One owner thread; allocates nothing per packet.
/// </summary>
internal sealed class SealStage : ICryptoJobs
{
    /// <summary>A TSO packet of 64 KiB is at most 45 full-sized segments; a batch holds a few reads' worth.</summary>
    public const int MaxJobs = 128;

    /// <summary>Header, padding up to 16 and tag around an inner packet.</summary>
    private const int MaxOverhead = MessageTransport.HeaderSize + MessageTransport.PaddingMultiple + MessageTransport.TagSize;

    private const int ArenaSize = 2 * (65535 + MaxOverhead);

    private readonly byte[] _arena = new byte[ArenaSize];
    private readonly OutboundTransport[] _jobs = new OutboundTransport[MaxJobs];
    private readonly int[] _offsets = new int[MaxJobs];
    private readonly TunnelDevice _device;
    private readonly InterfaceIo? _io;
    private readonly CryptoWorkers? _workers;
    private readonly CryptoRound? _round;
    private int _count;
    private int _used;

    /// <param name="io">Flushed after each batch; null when the engine's own <see cref="IDeviceIo"/>
    /// does not hold datagrams (tests, benchmarks).</param>
    /// <param name="batch">This thread's <see cref="UdpSendBatch"/>: it may send from this stage's buffer.</param>
    /// <param name="workers">Null or one worker: every job on the calling thread.</param>
    public SealStage(TunnelDevice device, InterfaceIo? io, UdpSendBatch? batch, CryptoWorkers? workers)
    {
        _device = device;
        _io = io;
        batch?.Lend(_arena);
        if (workers is { Workers: > 1 })
        {
            _workers = workers;
            _round = workers.Register(this);
        }
    }

    /// <summary>Messages prepared and not yet sent.</summary>
    public int Count => _count;

    /// <summary>Where the next inner packet (at most <paramref name="maxPacket"/> bytes, at most
    /// 64 KiB) is to be written; what is held is sent first if it would not fit.</summary>
    public Span<byte> NextPacket(int maxPacket)
    {
        if (_count == MaxJobs || _used + maxPacket + MaxOverhead > _arena.Length)
            Run();
        return _arena.AsSpan(_used + MessageTransport.ContentOffset, maxPacket);
    }

    /// <summary>The packet of <paramref name="length"/> bytes just written at <see cref="NextPacket"/>:
    /// prepared now (or staged, or dropped), sealed and sent at <see cref="Run"/>.</summary>
    public void Add(int length)
    {
        Span<byte> message = _arena.AsSpan(_used, _device.MaxMessageSize(length));
        if (!_device.PrepareTransport(message, length, out _jobs[_count]))
            return;
        _offsets[_count] = _used;
        _used += _jobs[_count].MessageLength;
        _count++;
    }

    /// <summary>Seals what is held (with the workers when there are several), then sends it in order.</summary>
    public void Run()
    {
        if (_count == 0)
        {
            _io?.FlushBatch(); // a handshake initiation the read started may be waiting there
            return;
        }
        CryptoWorkers.Run(_workers, _round, this, _count);
        for (int i = 0; i < _count; i++)
            _device.CommitTransport(_jobs[i], Message(i));
        _io?.FlushBatch(); // before this memory is written again: the batch may send from it
        Array.Clear(_jobs, 0, _count); // no keypair stays reachable from here
        _count = 0;
        _used = 0;
    }

    public void RunJob(int index) => _device.SealTransport(ref _jobs[index], Message(index));

    private Span<byte> Message(int index) => _arena.AsSpan(_offsets[index], _jobs[index].MessageLength);
}
