using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// Handshake messages on their way from the udp-receive thread to the handshake worker
/// (wireguard-go's queue.handshake of QueueHandshakeSize; the kernel's handshake_queue): a bounded
/// ring of preallocated 148-byte slots, each with the sender's endpoint and the work it is for
/// (<see cref="HandshakeAdmission.Consume"/> or <see cref="HandshakeAdmission.CookieReply"/>), so
/// queueing a message copies it once and allocates nothing. A full ring drops the new message and
/// counts it; messages that only earn a cookie reply may fill half of it, so that a flood of them
/// leaves room for the messages that proved their address. Only handshake messages pass here:
/// however many arrive, no data packet waits or is dropped for them.
/// </summary>
/// <remarks>Any number of producers and consumers; they share one monitor, held only to copy a slot.</remarks>
internal sealed class HandshakeQueue
{
    /// <summary>wireguard-go's QueueHandshakeSize.</summary>
    public const int Capacity = 1024;

    /// <summary>The largest handshake message, an initiation.</summary>
    public const int SlotSize = MessageInitiation.Size;

    /// <summary>From this depth the device counts as under load (wireguard-go: QueueHandshakeSize / 8).</summary>
    public const int BackloggedDepth = Capacity / 8;

    /// <summary>Messages waiting for a cookie reply are taken only below this depth.</summary>
    public const int CookieReplyDepth = Capacity / 2;

    private readonly object _gate = new();
    private readonly byte[] _slots = new byte[Capacity * SlotSize];
    private readonly int[] _lengths = new int[Capacity];
    private readonly Endpoint[] _sources = new Endpoint[Capacity];
    private readonly HandshakeAdmission[] _work = new HandshakeAdmission[Capacity];
    private int _head; // the oldest message's slot
    private int _count;
    private int _waiting;
    private bool _closed;
    private long _queued;
    private long _dropped;

    /// <summary>Messages waiting now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>True while at least <see cref="BackloggedDepth"/> messages wait.</summary>
    public bool Backlogged => Count >= BackloggedDepth;

    /// <summary>Messages queued so far.</summary>
    public long Queued => Interlocked.Read(ref _queued);

    /// <summary>Messages dropped so far because the ring was full (or closed).</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Copies <paramref name="message"/> (at most <see cref="SlotSize"/> bytes) into a free
    /// slot and wakes a waiting consumer. False, and counted, when the ring is full or closed, or
    /// for a cookie reply's message when it is half full.</summary>
    public bool TryEnqueue(ReadOnlySpan<byte> message, in Endpoint from, HandshakeAdmission work = HandshakeAdmission.Consume)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(message.Length, SlotSize);
        lock (_gate)
        {
            if (_closed || _count >= (work == HandshakeAdmission.CookieReply ? CookieReplyDepth : Capacity))
            {
                Interlocked.Increment(ref _dropped);
                return false;
            }
            int slot = (_head + _count) % Capacity;
            message.CopyTo(_slots.AsSpan(slot * SlotSize, SlotSize));
            _lengths[slot] = message.Length;
            _sources[slot] = from;
            _work[slot] = work;
            Volatile.Write(ref _count, _count + 1);
            Interlocked.Increment(ref _queued);
            if (_waiting > 0)
                Monitor.Pulse(_gate);
        }
        return true;
    }

    /// <summary>
    /// Takes the oldest message into <paramref name="message"/> (<see cref="SlotSize"/> bytes),
    /// waiting up to <paramref name="timeoutMilliseconds"/> for one. False on timeout or once closed.
    /// </summary>
    public bool TryDequeue(Span<byte> message, out int length, out Endpoint from, int timeoutMilliseconds) =>
        TryDequeue(message, out length, out from, out _, timeoutMilliseconds);

    /// <inheritdoc cref="TryDequeue(Span{byte}, out int, out Endpoint, int)"/>
    /// <param name="work">What the message was queued for.</param>
    public bool TryDequeue(Span<byte> message, out int length, out Endpoint from, out HandshakeAdmission work,
        int timeoutMilliseconds)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(message.Length, SlotSize);
        lock (_gate)
        {
            if (_count == 0 && !_closed && timeoutMilliseconds != 0)
            {
                _waiting++;
                Monitor.Wait(_gate, timeoutMilliseconds);
                _waiting--;
            }
            if (_count == 0 || _closed)
            {
                length = 0;
                from = default;
                work = HandshakeAdmission.Drop;
                return false;
            }
            int slot = _head;
            length = _lengths[slot];
            from = _sources[slot];
            work = _work[slot];
            _slots.AsSpan(slot * SlotSize, length).CopyTo(message);
            _head = (_head + 1) % Capacity;
            Volatile.Write(ref _count, _count - 1);
            return true;
        }
    }

    /// <summary>Wakes every consumer for good; later messages are dropped.</summary>
    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            Monitor.PulseAll(_gate);
        }
    }
}
