namespace Tunnel.Device;

/// <summary>
/// The peers whose timers are armed, in a binary min-heap keyed by the time each is due to be
/// looked at (the kernel keeps one timer_list per peer timer in the kernel's timer wheel; one heap
/// entry per peer does the same job without threads). A peer with no armed deadline is not in the
/// heap, so idle peers cost nothing per tick: a tick pops only the peers that are due.
/// </summary>
/// <remarks>
/// <para>Lazy re-insertion. A peer sits in the heap at its earliest deadline known when it was
/// scheduled (<see cref="Peer.TimerDueAt"/>). Packet paths move deadlines with plain atomic
/// writes; pushing one later (the keepalive 10 s ahead on every received packet) touches the heap
/// not at all: when the peer comes due it is ticked, its real next deadline is read again and it
/// goes back in. Only a deadline armed EARLIER than the peer's place takes the heap's lock
/// (<see cref="Schedule"/>).</para>
/// <para>No deadline is lost between the two sides: a packet path writes its deadline with a full
/// fence and then reads the peer's place; the queue writes the place with a full fence and then
/// reads the deadlines. One of the two sees the other's write, so either the packet path
/// schedules the peer itself or the queue sees the new deadline.</para>
/// <para>Deterministic under virtual time: the peers due at one tick fire in the order they were
/// added to the device (as the old full scan fired them), whatever their place in the heap.</para>
/// </remarks>
internal sealed class TimerQueue
{
    private readonly Lock _lock = new();
    // Serializes Run: the due buffer is reused, and a peer is ticked by one caller at a time.
    private readonly Lock _runLock = new();
    private Peer[] _heap = new Peer[16];
    private int _count;
    private long _nextOrder;
    private Peer[] _due = new Peer[16];

    /// <summary>Peers in the heap (tests and benchmarks).</summary>
    internal int Count { get { lock (_lock) return _count; } }

    /// <summary>The tie-break between peers due at the same time: the order they were created.</summary>
    internal long NextOrder() => Interlocked.Increment(ref _nextOrder);

    /// <summary>
    /// Makes sure <paramref name="peer"/> is looked at no later than <paramref name="due"/>: inserts
    /// it, or moves it earlier. A later or equal <paramref name="due"/> changes nothing.
    /// </summary>
    internal void Schedule(Peer peer, long due)
    {
        if (due == Peer.Never)
            return;
        lock (_lock)
        {
            if (due >= peer.TimerDueAt)
                return;
            Interlocked.Exchange(ref peer.TimerDueAt, due);
            if (peer.TimerSlot < 0)
            {
                if (_count == _heap.Length)
                    Array.Resize(ref _heap, _count * 2);
                peer.TimerSlot = _count;
                _heap[_count++] = peer;
            }
            SiftUp(peer.TimerSlot);
        }
    }

    /// <summary>Takes <paramref name="peer"/> out (removal: the heap must not keep a removed peer alive).</summary>
    internal void Unschedule(Peer peer)
    {
        lock (_lock)
        {
            Interlocked.Exchange(ref peer.TimerDueAt, Peer.Never);
            if (peer.TimerSlot >= 0)
                RemoveAt(peer.TimerSlot);
        }
    }

    /// <summary>
    /// The earliest deadline of any peer, exact: a peer at the top whose deadlines were pushed
    /// later since it was scheduled is moved to its real place first (or out, if none is armed).
    /// </summary>
    internal long NextDeadline()
    {
        lock (_lock)
        {
            while (_count > 0)
            {
                Peer top = _heap[0];
                long scheduled = top.TimerDueAt;
                long due = Refresh(top);
                if (due == Peer.Never)
                    RemoveAt(0);
                else if (due <= scheduled)
                    return due; // still the earliest: nothing before it in the heap
                else
                    SiftDown(0);
            }
            return Peer.Never;
        }
    }

    /// <summary>
    /// Fires every peer due at or before <paramref name="now"/> (in creation order), then puts each
    /// back at its next deadline. A deadline a firing arms at or before <paramref name="now"/> fires
    /// on the next call, as it did with the full scan.
    /// </summary>
    internal void Run(long now)
    {
        lock (_runLock)
        {
            int due = 0;
            lock (_lock)
            {
                while (_count > 0 && _heap[0].TimerDueAt <= now)
                {
                    Peer peer = _heap[0];
                    RemoveAt(0);
                    Interlocked.Exchange(ref peer.TimerDueAt, Peer.Never);
                    if (due == _due.Length)
                        Array.Resize(ref _due, due * 2);
                    _due[due++] = peer;
                }
            }
            Span<Peer> fired = _due.AsSpan(0, due);
            if (due > 1)
                fired.Sort(default(ByOrder));
            foreach (Peer peer in fired)
            {
                peer.Tick(now);
                // The place was cleared (with a fence) before the tick: a deadline a packet armed
                // since is either seen here or scheduled by the packet path itself.
                Interlocked.MemoryBarrier();
                Schedule(peer, peer.NextDeadline);
            }
            fired.Clear(); // no reference to a removed peer outlives the tick
        }
    }

    /// <summary>Puts every armed peer of the device in (a restored device: its deadlines were written directly).</summary>
    internal void ScheduleAll(ReadOnlySpan<Peer> peers)
    {
        foreach (Peer peer in peers)
            Schedule(peer, peer.NextDeadline);
    }

    /// <summary>Under the lock: the peer's real next deadline, its place published with a fence first.</summary>
    private static long Refresh(Peer peer)
    {
        long due = peer.NextDeadline;
        while (true)
        {
            Interlocked.Exchange(ref peer.TimerDueAt, due);
            long again = peer.NextDeadline;
            if (again >= due)
                return due;
            due = again;
        }
    }

    private void RemoveAt(int slot)
    {
        Peer removed = _heap[slot];
        removed.TimerSlot = -1;
        int last = --_count;
        if (slot != last)
        {
            Peer moved = _heap[last];
            _heap[slot] = moved;
            moved.TimerSlot = slot;
            _heap[last] = null!;
            SiftDown(slot);
            SiftUp(moved.TimerSlot);
        }
        else
        {
            _heap[last] = null!;
        }
    }

    private void SiftUp(int slot)
    {
        Peer peer = _heap[slot];
        while (slot > 0)
        {
            int parent = (slot - 1) >> 1;
            Peer above = _heap[parent];
            if (!Before(peer, above))
                break;
            _heap[slot] = above;
            above.TimerSlot = slot;
            slot = parent;
        }
        _heap[slot] = peer;
        peer.TimerSlot = slot;
    }

    private void SiftDown(int slot)
    {
        Peer peer = _heap[slot];
        while (true)
        {
            int child = 2 * slot + 1;
            if (child >= _count)
                break;
            if (child + 1 < _count && Before(_heap[child + 1], _heap[child]))
                child++;
            Peer below = _heap[child];
            if (!Before(below, peer))
                break;
            _heap[slot] = below;
            below.TimerSlot = slot;
            slot = child;
        }
        _heap[slot] = peer;
        peer.TimerSlot = slot;
    }

    private static bool Before(Peer a, Peer b) =>
        a.TimerDueAt < b.TimerDueAt || (a.TimerDueAt == b.TimerDueAt && a.TimerOrder < b.TimerOrder);

    private readonly struct ByOrder : IComparer<Peer>
    {
        public int Compare(Peer? x, Peer? y) => x!.TimerOrder.CompareTo(y!.TimerOrder);
    }
}
