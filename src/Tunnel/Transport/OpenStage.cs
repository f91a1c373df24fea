using System.Security.Cryptography;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The receive side's batches: each slot of the <see cref="CryptoPipeline"/> has its own recvmmsg
/// buffer (<see cref="NextBuffer"/>). The transport messages of one read are found their keypair
/// in arrival order, opened in place in that buffer by the <see cref="CryptoWorkers"/> in any
/// order, then committed batch after batch in arrival order (replay window, the peer, the TUN
/// device through the <see cref="TcpCoalescer"/>) by whichever thread finishes a batch, while the
/// receiving thread reads into the next buffer. So a peer's packets reach the TUN device in the
/// order they came and the plaintext is copied once, by the coalescer. The plaintext is cleared
/// from the buffer once committed. One receiving thread; allocates nothing per packet.
/// </summary>
internal sealed class OpenStage : IPipelineStage, IDisposable
{
    /// <summary>A recvmmsg of 32 messages, each a GRO run of at most 64 datagrams (the kernel's
    /// UDP_GRO_CNT_MAX).</summary>
    public const int MaxJobs = UdpReceiveBatch.Capacity * 64;

    private readonly UdpReceiveBatch[] _buffers = new UdpReceiveBatch[CryptoPipeline.Slots];
    private readonly InboundTransport[][] _jobs = new InboundTransport[CryptoPipeline.Slots][];
    private readonly int[][] _messages = new int[CryptoPipeline.Slots][];
    private readonly int[][] _offsets = new int[CryptoPipeline.Slots][];
    private readonly Endpoint[][] _sources = new Endpoint[CryptoPipeline.Slots][];
    private readonly TunnelDevice _device;
    private readonly InterfaceIo? _io;
    private readonly TcpCoalescer? _coalescer;
    private readonly CryptoPipeline _pipeline;
    private int _slot = -1; // the slot whose buffer is being read into and taken apart
    private int _count;
    private bool _overflow; // more datagrams than MaxJobs in one read: the rest go inline

    /// <param name="io">Where committed packets are delivered through <paramref name="coalescer"/>;
    /// null: the engine's own <see cref="IDeviceIo"/> delivers them one by one (tests, benchmarks).</param>
    /// <param name="workers">Null or one worker: every job on the calling thread, each batch
    /// delivered before <see cref="Run"/> returns.</param>
    public OpenStage(TunnelDevice device, CryptoWorkers? workers, InterfaceIo? io = null, TcpCoalescer? coalescer = null)
    {
        _device = device;
        _io = io;
        _coalescer = coalescer;
        for (int i = 0; i < CryptoPipeline.Slots; i++)
        {
            _buffers[i] = new UdpReceiveBatch();
            _jobs[i] = new InboundTransport[MaxJobs];
            _messages[i] = new int[MaxJobs];
            _offsets[i] = new int[MaxJobs];
            _sources[i] = new Endpoint[MaxJobs];
        }
        _pipeline = workers is { Workers: > 1 } ? workers.Register(this) : new CryptoPipeline(this, workers: null);
    }

    /// <summary>Batches handed on and not yet delivered.</summary>
    public int InFlight => _pipeline.InFlight;

    /// <summary>Jobs and commits that threw (their messages are lost).</summary>
    public long Failures => _pipeline.Failures;

    /// <summary>The buffer for the next recvmmsg: the next slot's, once no batch in flight uses it.</summary>
    public UdpReceiveBatch NextBuffer()
    {
        if (_slot < 0)
        {
            _slot = _pipeline.NextSlot();
            _count = 0;
        }
        _overflow = false;
        return _buffers[_slot];
    }

    /// <summary>
    /// Takes datagram <paramref name="offset"/>..+<paramref name="length"/> of message
    /// <paramref name="message"/> of <paramref name="batch"/> (the last <see cref="NextBuffer"/>)
    /// if it is a transport message (one that opens is delivered after <see cref="Run"/>; one
    /// that cannot is dropped). False: not a transport message, or one of a read too large to
    /// batch, for <see cref="TunnelDevice.ReceiveDatagram"/> (which then handles it inline, after
    /// everything before it was delivered).
    /// </summary>
    public bool TryAdd(UdpReceiveBatch batch, int message, int offset, int length, in Endpoint from)
    {
        if (_overflow)
            return false;
        if (_slot < 0 || !ReferenceEquals(batch, _buffers[_slot]))
            throw new ArgumentException("not the buffer NextBuffer gave", nameof(batch));
        ReadOnlySpan<byte> datagram = batch.Data(message).Slice(offset, length);
        if (!MessageTransport.IsWellFormed(datagram))
            return false;
        if (_count == MaxJobs)
        {
            // Not with the kernels of today (32 messages of at most 64 datagrams): deliver what is
            // held, then the rest of this read one by one, so that nothing overtakes.
            Run();
            _pipeline.Drain();
            _overflow = true;
            return false;
        }
        int slot = _slot;
        if (!_device.PrepareReceive(datagram, out _jobs[slot][_count]))
            return true;
        _messages[slot][_count] = message;
        _offsets[slot][_count] = offset;
        _sources[slot][_count] = from;
        _count++;
        return true;
    }

    /// <summary>Hands what is held on to be opened (by the workers when there are several and it
    /// is worth a wake-up) and delivered in order; opens older batches' jobs while the workers are
    /// behind. The buffer is not read into again until that batch is delivered.</summary>
    public void Run()
    {
        if (_slot < 0 || _count == 0)
            return;
        int count = _count;
        _slot = -1;
        _count = 0;
        _pipeline.Submit(count);
    }

    /// <summary>Hands on what is held and waits until every batch is delivered.</summary>
    public void Drain()
    {
        Run();
        _pipeline.Drain();
    }

    /// <summary>Drains, the workers stop looking at this stage, and the buffers are freed.</summary>
    public void Dispose()
    {
        Run();
        _pipeline.Close();
        foreach (UdpReceiveBatch buffer in _buffers)
            buffer.Dispose();
    }

    void IPipelineStage.RunJob(int slot, int index) => _device.OpenTransport(ref _jobs[slot][index], Message(slot, index));

    /// <summary>Replay window and delivery, message after message; then the coalesced packets go
    /// to the TUN device and the plaintext is cleared, before the buffer can be read into again.</summary>
    void IPipelineStage.CommitBatch(int slot)
    {
        InboundTransport[] jobs = _jobs[slot];
        int count = _pipeline.JobCount(slot);
        TcpCoalescer? outer = _io?.BeginCoalescing(_coalescer); // this thread's deliveries go to the stage's coalescer
        try
        {
            for (int i = 0; i < count; i++)
            {
                Span<byte> message = Message(slot, i);
                try
                {
                    _device.CommitReceive(jobs[i], message, _sources[slot][i]);
                }
                finally
                {
                    // Opened or not (a decryption that fails authentication may have written some).
                    CryptographicOperations.ZeroMemory(message[MessageTransport.ContentOffset..^MessageTransport.TagSize]);
                }
            }
        }
        finally
        {
            _io?.FlushDelivered();
            _io?.BeginCoalescing(outer);
            Array.Clear(jobs, 0, count); // no keypair stays reachable from here
        }
    }

    private Span<byte> Message(int slot, int index) =>
        _buffers[slot].Data(_messages[slot][index]).Slice(_offsets[slot][index], _jobs[slot][index].MessageLength);
}
