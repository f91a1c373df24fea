using System.Buffers.Binary;

namespace Tunnel.Device;

/// <summary>
/// The rekey after every session was cleared (a VM fork; handshakes released after a reseed),
/// paced on the engine's clock: one initiation per <see cref="SpacingNanos"/> slot, at a random
/// point inside its slot, peers with the most recent traffic first. The notifier only hands the
/// peers over (<see cref="Add"/>); the initiations (two X25519 multiplications each) leave from
/// <see cref="TunnelDevice.Tick"/>, on the host's timer thread, outside the PM chain and its locks.
/// </summary>
/// <remarks>
/// <para>Why paced: rekeying 100,000 peers at once is ~7 s of one core on the notifier's thread,
/// and a burst the responders (or one hub answering a fleet of clones) must absorb, with one
/// core busy while the data path waits. One slot of 250 µs is 4,000
/// initiations a second (see <see cref="DefaultSpacingNanos"/>): 1,000 peers are rekeyed in
/// 0.25 s, 100,000 in 25 s.</para>
/// <para>No peer waits behind the list when it matters: a packet to a peer still in the queue
/// starts its handshake at once (SendData), and the pacer skips a peer that has a session or a
/// handshake in progress when its slot comes. Two initiations to one peer never leave within
/// the responder's flood limit or REKEY_TIMEOUT: the pacer goes through the same
/// <see cref="Peer.InitiateHandshake"/> spacing as every initiation.</para>
/// <para>Deterministic under virtual time: no threads, the jitter comes from the device's
/// generator, and the order is (last traffic, newest first; then creation order).</para>
/// <para>Not captured by a snapshot: a restored device is a fork, and its own guard clears and
/// queues again the peers that had a session (a peer the original had not reached yet waits for
/// traffic, as it would under the kernel).</para>
/// </remarks>
internal sealed class RekeyPacer(TunnelDevice device)
{
    /// <summary>
    /// One initiation per slot: 4,000 a second (100,000 peers in 25 s). Each costs this device
    /// two or three X25519 multiplications to send and two to consume its response, ~130 µs in
    /// all (docs/BENCHMARKS.md, issue 12), so this pace is about half of one core, and leaves the
    /// other half and the other cores to the data path. It no longer has to stay under a rate of
    /// handshake messages: the responses of our own rekey do not put this device under load (a
    /// host with a queue decides by its depth, the worker keeps up with 4,000 a second; without a
    /// queue a response that completes our handshake is not counted, see
    /// TunnelDevice.CountCostlyHandshake). The old pace, 384 a second, was set by that rate.
    /// </summary>
    internal const long DefaultSpacingNanos = Constants.NanosPerSecond / 4_000;

    /// <summary>The slot length (benchmarks compare paces; the device uses the default).</summary>
    internal long SpacingNanos { get; set; } = DefaultSpacingNanos;

    /// <summary>A host that ticked late sends at most this much of the backlog at once, then goes
    /// on at the pace: a stalled timer thread must not turn into a burst.</summary>
    private const long CatchUpNanos = 10 * Constants.NanosPerMillisecond;

    private readonly Lock _lock = new();
    private readonly Lock _runLock = new();
    private Peer[] _queue = [];
    private int _next;
    private int _count;
    private bool _sorted = true;
    private long _slotStart;
    private long _due = Peer.Never;
    private int _removedSinceCompact;
    private Peer[] _batch = new Peer[16];

    /// <summary>Peers still waiting for their slot.</summary>
    internal int Pending { get { lock (_lock) return _count - _next; } }

    /// <summary>When the next initiation is due, or <see cref="Peer.Never"/>.</summary>
    internal long NextDue { get { lock (_lock) return _due; } }

    /// <summary>
    /// Queues <paramref name="peers"/> for an initiation (with those still waiting; each once). A
    /// queue that was empty starts now; one that was running keeps its pace. Cheap: the sort is
    /// left to the first <see cref="Run"/>, off the caller's thread.
    /// </summary>
    internal void Add(IReadOnlyCollection<Peer> peers, long now)
    {
        if (peers.Count == 0)
            return;
        lock (_lock)
        {
            int waiting = _count - _next;
            var merged = new Peer[waiting + peers.Count];
            Array.Copy(_queue, _next, merged, 0, waiting);
            int count = waiting;
            if (waiting == 0)
            {
                // The usual case (a fork's one notification): nothing to merge with. Callers hand
                // over each peer once (one pass over the device's list), so no set is needed.
                foreach (Peer peer in peers)
                    merged[count++] = peer;
            }
            else
            {
                var seen = new HashSet<Peer>(merged.AsSpan(0, waiting).ToArray(), ReferenceEqualityComparer.Instance);
                foreach (Peer peer in peers)
                {
                    if (seen.Add(peer))
                        merged[count++] = peer;
                }
            }
            _queue = merged;
            _next = 0;
            _count = count;
            _sorted = false;
            if (waiting == 0)
            {
                // The first slot has no jitter: a device with one peer rekeys at the next tick.
                _slotStart = now;
                _due = now;
            }
        }
    }

    /// <summary>Sends the initiations whose slot has come (the device's Tick).</summary>
    internal void Run(long now)
    {
        lock (_runLock)
        {
            int taken = 0;
            lock (_lock)
            {
                if (_next == _count || _due > now)
                    return;
                if (!_sorted)
                {
                    SortByTraffic(_queue.AsSpan(_next, _count - _next));
                    _sorted = true;
                }
                if (now - _due > CatchUpNanos)
                {
                    _slotStart += now - CatchUpNanos - _due;
                    _due = now - CatchUpNanos;
                }
                while (_next < _count && _due <= now)
                {
                    if (taken == _batch.Length)
                        Array.Resize(ref _batch, taken * 2);
                    _batch[taken++] = _queue[_next];
                    _queue[_next++] = null!;
                    _slotStart += SpacingNanos;
                    _due = _slotStart + Jitter();
                }
                if (_next == _count)
                {
                    _queue = [];
                    _next = _count = 0;
                    _due = Peer.Never;
                }
            }
            Span<Peer> batch = _batch.AsSpan(0, taken);
            foreach (Peer peer in batch)
            {
                // Someone got there first (a packet, the peer's own initiation): nothing to do.
                if (peer.WantsRekey(now))
                    peer.InitiateHandshake();
            }
            batch.Clear();
        }
    }

    /// <summary>
    /// A peer left the device (config lock held): the queue lets go of removed peers once as
    /// many removals as half the waiting peers have come, so a removed peer's memory is not held
    /// until its slot, and removing every peer of a long queue is still O(1) a removal, amortized
    /// (one pass over the queue per half of it removed; no index per peer to keep up to date).
    /// </summary>
    internal void Removed()
    {
        lock (_lock)
        {
            int waiting = _count - _next;
            if (waiting == 0 || ++_removedSinceCompact * 2 < waiting)
                return;
            _removedSinceCompact = 0;
            int kept = _next;
            for (int i = _next; i < _count; i++)
            {
                Peer peer = _queue[i];
                if (!peer.IsRemoved)
                    _queue[kept++] = peer; // order kept: a sorted queue stays sorted
            }
            Array.Clear(_queue, kept, _count - kept);
            _count = kept;
            if (_next == _count)
            {
                _queue = [];
                _next = _count = 0;
                _due = Peer.Never;
            }
        }
    }

    /// <summary>Forgets every queued peer (the device is going away).</summary>
    internal void Clear()
    {
        lock (_lock)
        {
            _queue = [];
            _next = _count = 0;
            _due = Peer.Never;
        }
    }

    /// <summary>Most recent traffic first; peers never heard from (0) last; ties in creation order.</summary>
    private static void SortByTraffic(Span<Peer> peers)
    {
        var keys = new (long Traffic, long Order)[peers.Length];
        for (int i = 0; i < peers.Length; i++)
            keys[i] = (~peers[i].LastTrafficNanos, peers[i].TimerOrder); // ~: descending, and Never-heard (MinValue) last
        keys.AsSpan().Sort(peers);
    }

    /// <summary>A random point inside one slot, from the device's generator.</summary>
    private long Jitter()
    {
        Span<byte> bytes = stackalloc byte[sizeof(uint)];
        device.FillRandom(bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes) % SpacingNanos;
    }
}

public sealed partial class Peer
{
    /// <summary>
    /// For the paced rekey: still in the device, no handshake in progress, and no current keypair
    /// that can send (a packet or the peer itself may have started one since it was queued; the
    /// hot path leaves a stale keypair in place, barred from sending).
    /// </summary>
    internal bool WantsRekey(long now)
    {
        lock (_lock)
        {
            if (_removed || _handshakeIndex != 0 || _handshake?.Stage is HandshakeStage.InitiationConsumed)
                return false;
            return !CanSendWith(Keypairs.Current, now);
        }
    }
}
