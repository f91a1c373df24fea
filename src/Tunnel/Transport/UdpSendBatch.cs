using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// Datagrams one thread emits while it works through one TUN read (the segments of a TSO
/// packet), collected so they leave in one UDP GSO send (UDP_SEGMENT) instead of one sendto each,
/// as wireguard-go's StdNetBind does. A GSO send carries equal-sized datagrams to one destination,
/// only the last may be shorter; anything that breaks the run flushes what is held first, so the
/// order of datagrams never changes. Owned by one thread; <see cref="Flush"/> at the end of each
/// read, so nothing is held while the thread waits for the next one.
/// <para>The fork guard's hot path checks each transport message against the VM generation just
/// before it is handed to <see cref="InterfaceIo.SendDatagram(ReadOnlySpan{byte}, in Endpoint, ulong)"/>,
/// that is, before it lands here. So that holding messages does not widen the window between that
/// check and the wire, each message comes with the generation that check validated (not a new
/// read: a snapshot between the check and here would pass one); the batch holds messages of one
/// generation only, reads the counter once just before the send, and drops everything it holds if
/// it moved (the next packet's own check then expires the keys and starts a handshake).</para>
/// <para>Datagrams that lie back to back in the memory <see cref="Lend"/> named (the
/// <see cref="SealStage"/> seals messages one after the other in one buffer) are sent from there,
/// not copied in: the lender flushes before it writes that memory again.</para>
/// </summary>
internal sealed class UdpSendBatch
{
    /// <summary>UDP_MAX_SEGMENTS in the kernel (raised to 128 in 6.x; 64 works everywhere).</summary>
    private const int MaxSegments = 64;

    /// <summary>The UDP payload of one GSO send: it has to fit one IP packet.</summary>
    private const int MaxBytes = 65535 - 48 - 8;

    private readonly byte[] _buffer = new byte[MaxBytes];
    private Endpoint _destination;
    private int _segmentSize;
    private int _count;
    private int _length;
    private bool _closed; // the last datagram was short: nothing may follow it in this send
    private bool _gso = true;
    private ulong _generation; // the generation the engine validated for the held datagrams
    private byte[]? _lent;     // memory whose datagrams may be held where they are
    private int _lentStart;    // the held run's offset in _lent, or -1: the run is in _buffer

    /// <summary>Datagrams inside <paramref name="memory"/> may be held in place from now on; the
    /// caller flushes before it changes any of it.</summary>
    public void Lend(byte[] memory) => _lent = memory;

    /// <summary>Holds <paramref name="datagram"/> for <paramref name="to"/>, sending what is held
    /// first when it cannot join them.</summary>
    public void Add(InterfaceIo io, ReadOnlySpan<byte> datagram, in Endpoint to, ulong generation)
    {
        if (_count > 0 && (_closed || datagram.Length > _segmentSize || _count == MaxSegments
                           || _length + datagram.Length > MaxBytes || !_destination.Equals(to) || !_destination.SameSource(to)
                           || generation != _generation))
            Flush(io);
        if (datagram.Length > MaxBytes)
        {
            io.SendNow(datagram, to);
            return;
        }
        int lentAt = OffsetInLent(datagram);
        // In place only while the run stays in place and contiguous; else it is sent first.
        if (_count > 0 && (_lentStart >= 0) != (lentAt >= 0 && lentAt == _lentStart + _length))
            Flush(io);
        if (_count == 0)
        {
            _destination = to;
            _segmentSize = datagram.Length;
            _generation = generation;
            _lentStart = lentAt;
        }
        else if (datagram.Length < _segmentSize)
        {
            _closed = true;
        }
        if (_lentStart < 0)
            datagram.CopyTo(_buffer.AsSpan(_length));
        _length += datagram.Length;
        _count++;
    }

    /// <summary>Where <paramref name="datagram"/> starts in the lent memory, or -1 if it is not in it.</summary>
    private int OffsetInLent(ReadOnlySpan<byte> datagram)
    {
        if (_lent is not { Length: > 0 } lent || datagram.IsEmpty)
            return -1;
        // Two references into one array: their distance survives the GC moving it.
        nint offset = System.Runtime.CompilerServices.Unsafe.ByteOffset(
            ref lent[0], ref System.Runtime.InteropServices.MemoryMarshal.GetReference(datagram));
        return offset >= 0 && offset + datagram.Length <= lent.Length ? (int)offset : -1;
    }

    /// <summary>Sends what is held: one datagram plainly, several as one GSO send; a socket
    /// that refuses GSO gets them one by one, now and from then on.</summary>
    public void Flush(InterfaceIo io)
    {
        if (_count == 0)
            return;
        var held = _lentStart >= 0 ? _lent.AsSpan(_lentStart, _length) : _buffer.AsSpan(0, _length);
        if (io.GenerationCounter is { } counter && counter.Read() != _generation)
        {
            // The VM was cloned or restored while these waited: they may be under stale keys.
            io.CountStaleBatchDrop(_count);
            _count = 0;
            _length = 0;
            _closed = false;
            return;
        }
        if (_count == 1 || !_gso || !io.SendSegments(held, _segmentSize, _destination, out var unsupported) && unsupported)
        {
            if (_count > 1 && _gso)
                _gso = false;
            for (var offset = 0; offset < _length; offset += _segmentSize)
                io.SendNow(held[offset..Math.Min(offset + _segmentSize, _length)], _destination);
        }
        _count = 0;
        _length = 0;
        _closed = false;
    }
}
