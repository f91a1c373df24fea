using ForkNotify;

namespace Tunnel.Device;

/// <summary>
/// The engine's one seam to fork safety (issue 6): the pull counter the hot path checks, the
/// reseed gate that holds handshakes while the randomness may be a copy, and the count of packets
/// the check dropped. The engine calls <see cref="IsCurrent"/> once per packet (a load and a
/// compare) and <see cref="TryBeginHandshake"/> once per handshake message; the
/// <see cref="ForkGuard"/> drives the rest. Every decision takes one read of the counter: the
/// value checked is the value recorded.
/// </summary>
public sealed class ForkSeam
{
    private IGenerationCounter? _counter;
    private ulong _reseededGeneration;
    private volatile bool _gate;
    private volatile bool _held;
    private long _staleKeyDrops;

    /// <summary>
    /// The pull counter (vmgenid CTRA page, virtio-rng copy-on-leak word, VMClock), or null for no
    /// check. Each keypair records the value read when the handshake that derives it starts; the
    /// send path compares, and on a mismatch drops the packet, expires the current keypairs and
    /// starts a handshake. Set it before the first handshake: keypairs derived without a counter
    /// carry generation 0 and are treated as stale if the counter reads otherwise.
    /// </summary>
    public IGenerationCounter? Counter
    {
        get => Volatile.Read(ref _counter);
        set => Volatile.Write(ref _counter, value);
    }

    /// <summary>
    /// TEST-ONLY negative control: the handshake senders read the counter a second time for the
    /// generation they record, after drawing randomness (the code before issue 14). A snapshot
    /// between the two reads makes a handshake from copied randomness tagged as the clone's.
    /// </summary>
    public bool TwoReadsForTest { get; set; }

    /// <summary>
    /// The hot-path check, the last thing before the wire: true when there is no counter or it
    /// still reads <paramref name="generation"/>, the generation the message's keys were made in.
    /// </summary>
    public bool IsCurrent(ulong generation) => Counter is not { } counter || counter.Read() == generation;

    /// <summary>
    /// One read of the counter for a handshake message: false while the reseed gate is on and the
    /// counter has moved past the last reseed the device was told of (randomness drawn now may be
    /// every clone's). <paramref name="generation"/> is the value read, the one the handshake must
    /// record (0 without a counter).
    /// </summary>
    public bool TryBeginHandshake(out ulong generation)
    {
        IGenerationCounter? counter = Counter;
        generation = counter?.Read() ?? 0;
        return !_held && (counter is null || !_gate || generation == Volatile.Read(ref _reseededGeneration));
    }

    /// <summary>No handshake message at all until <see cref="ReleaseHandshakes"/>: a fork whose reseed
    /// took in nothing unique to this clone (with or without a counter).</summary>
    public void HoldHandshakes() => _held = true;

    public void ReleaseHandshakes() => _held = false;

    /// <summary>True while <see cref="HoldHandshakes"/> is in force.</summary>
    public bool HandshakesHeld => _held;

    /// <summary>The generation a handshake records: <paramref name="checkedGeneration"/>, the value
    /// its gate check read (a second read only under <see cref="TwoReadsForTest"/>).</summary>
    internal ulong HandshakeGeneration(ulong checkedGeneration) =>
        TwoReadsForTest ? Counter?.Read() ?? 0 : checkedGeneration;

    /// <summary>
    /// Tells the device that its randomness has taken in an input unique to this VM for counter
    /// value <paramref name="generation"/> (the value read before that reseed began) and turns the
    /// gate on: from then on, while the counter reads anything else, no handshake message is made.
    /// The hot path sees a fork as soon as the hypervisor moves the counter, before the guest has
    /// reseeded; a handshake made in that window would carry the same ephemeral key and index in
    /// every clone, and clones that all receive the responder's answer would derive one session.
    /// </summary>
    public void MarkRandomReseeded(ulong generation)
    {
        Volatile.Write(ref _reseededGeneration, generation);
        _gate = true;
    }

    /// <summary>True once <see cref="MarkRandomReseeded"/> has been called (or restored from a snapshot).</summary>
    public bool GateEnabled => _gate;

    /// <summary>The generation of the last reseed the device was told of.</summary>
    public ulong ReseededGeneration => Volatile.Read(ref _reseededGeneration);

    /// <summary>Turns the gate off (the fork guard detaching).</summary>
    public void ClearGate() => _gate = false;

    /// <summary>Packets the hot-path check dropped because their keypair is from another VM generation.</summary>
    public long StaleKeyDrops => Interlocked.Read(ref _staleKeyDrops);

    internal void CountStaleKeyDrop() => Interlocked.Increment(ref _staleKeyDrops);

    /// <summary>Guest memory for a snapshot: the gate and the drop count (the counter is the host's).</summary>
    internal ForkSeamState Capture() => new(_gate, ReseededGeneration, StaleKeyDrops, _held);

    internal void Restore(in ForkSeamState state)
    {
        Interlocked.Exchange(ref _staleKeyDrops, state.StaleKeyDrops);
        // The guest's memory says which generation its randomness was last reseeded for; a
        // clone's counter has moved past it, so its gate stays shut until its own reseed.
        Volatile.Write(ref _reseededGeneration, state.ReseededGeneration);
        _gate = state.Gate;
        _held = state.Held;
    }
}

/// <summary>The captured part of a <see cref="ForkSeam"/>.</summary>
internal readonly record struct ForkSeamState(bool Gate, ulong ReseededGeneration, long StaleKeyDrops, bool Held);
