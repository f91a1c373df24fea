using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The send side's batches: the inner packets of one TUN read (the segments of a TSO packet) are
/// written straight into a slot of one buffer where each becomes its transport message in place,
/// prepared in order by the reading thread (route, keypair, nonce), sealed by the
/// <see cref="CryptoWorkers"/> in any order, and committed batch after batch in the order they
/// were read (the hot-path check, then the <see cref="UdpSendBatch"/>, which sends them from this
/// buffer as one GSO send) by whichever thread finishes a batch (<see cref="CryptoPipeline"/>).
/// The reader fills the next slot meanwhile. So a packet is copied once on its way (out of the TUN
/// read, or not at all without offload) and a peer's packets leave in the order they came. One
/// reading thread; allocates nothing per packet.
/// </summary>
internal sealed class SealStage : IPipelineStage, IDisposable
{
    /// <summary>A TSO packet of 64 KiB is at most 45 full-sized segments; a batch holds a few reads' worth.</summary>
    public const int MaxJobs = 128;

    /// <summary>Header, padding up to 16 and tag around an inner packet.</summary>
    private const int MaxOverhead = MessageTransport.HeaderSize + MessageTransport.PaddingMultiple + MessageTransport.TagSize;

    private const int SlotSize = 2 * (65535 + MaxOverhead);

    private readonly byte[] _arena = new byte[CryptoPipeline.Slots * SlotSize];
    private readonly OutboundTransport[][] _jobs = new OutboundTransport[CryptoPipeline.Slots][];
    private readonly int[][] _offsets = new int[CryptoPipeline.Slots][];
    private readonly TunnelDevice _device;
    private readonly InterfaceIo? _io;
    private readonly UdpSendBatch? _batch;
    private readonly CryptoPipeline _pipeline;
    private int _slot = -1; // the slot being filled, -1 before the next is taken
    private int _count;
    private int _used;

    /// <param name="io">Flushed after each batch; null when the engine's own <see cref="IDeviceIo"/>
    /// does not hold datagrams (tests, benchmarks).</param>
    /// <param name="batch">Where the committed messages wait for their GSO send: it may send from this stage's buffer.</param>
    /// <param name="workers">Null or one worker: every job on the calling thread, each batch
    /// committed before <see cref="Run"/> returns.</param>
    public SealStage(TunnelDevice device, InterfaceIo? io, UdpSendBatch? batch, CryptoWorkers? workers)
    {
        _device = device;
        _io = io;
        _batch = batch;
        batch?.Lend(_arena);
        for (int i = 0; i < CryptoPipeline.Slots; i++)
        {
            _jobs[i] = new OutboundTransport[MaxJobs];
            _offsets[i] = new int[MaxJobs];
        }
        _pipeline = workers is { Workers: > 1 } ? workers.Register(this) : new CryptoPipeline(this, workers: null);
    }

    /// <summary>Messages prepared and not yet handed on.</summary>
    public int Count => _count;

    /// <summary>Batches handed on and not yet committed.</summary>
    public int InFlight => _pipeline.InFlight;

    /// <summary>Jobs and commits that threw (their messages are lost).</summary>
    public long Failures => _pipeline.Failures;

    /// <summary>Where the next inner packet (at most <paramref name="maxPacket"/> bytes, at most
    /// 64 KiB) is to be written; what is held is handed on first if it would not fit.</summary>
    public Span<byte> NextPacket(int maxPacket)
    {
        if (_slot >= 0 && (_count == MaxJobs || _used + maxPacket + MaxOverhead > SlotSize))
            Run();
        if (_slot < 0)
        {
            _slot = _pipeline.NextSlot(); // waits only while every slot is in flight
            _count = 0;
            _used = 0;
        }
        return _arena.AsSpan((_slot * SlotSize) + _used + MessageTransport.ContentOffset, maxPacket);
    }

    /// <summary>The packet of <paramref name="length"/> bytes just written at <see cref="NextPacket"/>:
    /// prepared now (or staged, or dropped), sealed and sent after <see cref="Run"/>.</summary>
    public void Add(int length)
    {
        int start = (_slot * SlotSize) + _used;
        Span<byte> message = _arena.AsSpan(start, _device.MaxMessageSize(length));
        OutboundTransport[] jobs = _jobs[_slot];
        if (!_device.PrepareTransport(message, length, out jobs[_count]))
            return;
        _offsets[_slot][_count] = start;
        _used += jobs[_count].MessageLength;
        _count++;
    }

    /// <summary>
    /// Hands what is held on to be sealed (by the workers when there are several and it is worth
    /// a wake-up) and sent in order, then seals older batches' jobs while the workers are behind;
    /// returns to the caller's next read while the newest batch may still be in flight. Without
    /// workers everything is sent before it returns.
    /// </summary>
    public void Run()
    {
        if (_count == 0)
            return;
        int count = _count;
        _slot = -1;
        _count = 0;
        _pipeline.Submit(count);
    }

    /// <summary>Hands on what is held and waits until every batch is sent (the reader's end, tests).</summary>
    public void Drain()
    {
        Run();
        _pipeline.Drain();
    }

    /// <summary>Drains, and the workers stop looking at this stage.</summary>
    public void Dispose()
    {
        Run();
        _pipeline.Close();
    }

    void IPipelineStage.RunJob(int slot, int index) => _device.SealTransport(ref _jobs[slot][index], Message(slot, index));

    /// <summary>The hot-path check and the send, message after message; the batch's datagrams
    /// leave (or are dropped, if the VM generation moved) before the slot can be written again.</summary>
    void IPipelineStage.CommitBatch(int slot)
    {
        OutboundTransport[] jobs = _jobs[slot];
        int count = _pipeline.JobCount(slot);
        UdpSendBatch? outer = InterfaceIo.BeginBatch(_batch); // this thread's sends go to the stage's batch
        try
        {
            for (int i = 0; i < count; i++)
                _device.CommitTransport(jobs[i], Message(slot, i));
        }
        finally
        {
            if (_io is not null)
                _io.FlushBatch(); // before this memory is written again: the batch may send from it
            InterfaceIo.BeginBatch(outer);
            Array.Clear(jobs, 0, count); // no keypair stays reachable from here
        }
    }

    private Span<byte> Message(int slot, int index) =>
        _arena.AsSpan(_offsets[slot][index], _jobs[slot][index].MessageLength);
}
