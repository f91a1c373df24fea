using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// One session's transport state (the kernel's noise_keypair, wireguard-go's Keypair): the two
/// ChaCha20-Poly1305 keys of a completed handshake (pinned, zeroed when the keypair ends), the
/// send counter (the nonce, taken with Interlocked so several send threads never share one), the
/// receive replay window, when it was derived, and which side initiated.
/// </summary>
/// <remarks>
/// Every field is plain state of this object (no caches), so a VM-snapshot capture can copy it.
/// Encryption and decryption read the keys without a lock, inside a read-side section of the
/// device's <see cref="Rcu"/>: a keypair leaving its slot is retired at once (nothing more is
/// sealed, sent or accepted under it) and zeroed only once no data thread can still hold it.
/// </remarks>
public sealed class Keypair
{
    private readonly SessionKeys _keys;
    private long _sendNonce;      // next counter to use; read as ulong
    private volatile bool _canSend = true;
    private volatile bool _retired;
    private volatile bool _keysZeroed;

    internal Keypair(SessionKeys keys, Peer peer, long createdNanos, ulong createdGeneration)
    {
        _keys = keys;
        Peer = peer;
        CreatedNanos = createdNanos;
        CreatedGeneration = createdGeneration;
    }

    /// <summary>A keypair from a VM snapshot: the same keys, counters, window and generation.</summary>
    internal Keypair(SessionKeys keys, Peer peer, long createdNanos, ulong createdGeneration, ulong sendNonce,
        bool canSend, ReplayFilter replayFilter)
        : this(keys, peer, createdNanos, createdGeneration)
    {
        _sendNonce = (long)sendNonce;
        _canSend = canSend;
        replayFilter.CopyTo(ReplayFilter);
    }

    public Peer Peer { get; }

    /// <summary>The sending flag alone (not zeroed), for a VM-snapshot capture.</summary>
    internal bool SendingAllowed => _canSend;

    /// <summary>Monotonic time the keypair was derived, for REKEY_AFTER_TIME and REJECT_AFTER_TIME.</summary>
    public long CreatedNanos { get; }

    /// <summary>
    /// The hot-path counter (<see cref="ForkSeam.Counter"/>) when the handshake that
    /// derived these keys started on our side; 0 without a counter. Stage 2 of the send path
    /// compares it with the counter: a keypair from another VM generation must not send.
    /// </summary>
    public ulong CreatedGeneration { get; }

    public bool IsInitiator => _keys.IsInitiator;

    /// <summary>Our index: incoming transport messages carry it as receiver index.</summary>
    public uint LocalIndex => _keys.LocalIndex;

    /// <summary>The peer's index: written on our outgoing transport messages.</summary>
    public uint RemoteIndex => _keys.RemoteIndex;

    public ReplayFilter ReplayFilter { get; } = new();

    /// <summary>The next send counter (for the state digest and a later snapshot).</summary>
    internal ulong SendNonce
    {
        get => (ulong)Volatile.Read(ref _sendNonce);
        set => Volatile.Write(ref _sendNonce, (long)value);
    }

    /// <summary>False once expired (<see cref="Peer.ExpireCurrentKeypairs"/>) or retired: receive only.</summary>
    public bool CanSend => _canSend && !_retired;

    /// <summary>
    /// True once the keypair is retired (cleared, rotated out, its peer removed): nothing is sealed,
    /// sent or accepted under it any more, and its keys are zeroed, or will be as soon as no data
    /// thread can still hold it (<see cref="KeysZeroed"/>).
    /// </summary>
    public bool IsZeroed => _retired;

    /// <summary>True once both keys and the replay window are actually zeroed.</summary>
    internal bool KeysZeroed => _keysZeroed;

    internal ReadOnlySpan<byte> SendKey => _keys.Send.Bytes;
    internal ReadOnlySpan<byte> ReceiveKey => _keys.Receive.Bytes;

    /// <summary>
    /// Takes the next send counter. False once REJECT_AFTER_MESSAGES counters are used: the caller
    /// must not send under this keypair. The counter taken is never handed out again.
    /// </summary>
    internal bool TryTakeNonce(out ulong nonce)
    {
        // Interlocked on a signed long: past 2^63 the cast gives a huge ulong, which is refused too.
        nonce = (ulong)(Interlocked.Increment(ref _sendNonce) - 1);
        return nonce < Constants.RejectAfterMessages;
    }

    /// <summary>True when this keypair is too old (or too used) to accept or send anything.</summary>
    internal bool IsExpired(long now) =>
        _retired || now - CreatedNanos >= Constants.RejectAfterTimeNanos;

    internal void DisallowSending() => _canSend = false;

    /// <summary>Ends the session: readers that load the keypair from now on leave it alone.</summary>
    internal void Retire()
    {
        _retired = true;
        _canSend = false;
    }

    /// <summary>
    /// Zeroes both keys and the replay window. Only when no thread can hold the keypair: from
    /// <see cref="Rcu"/>, or for one that was never published.
    /// </summary>
    internal void Zero()
    {
        Retire();
        _keys.Dispose();
        ReplayFilter.Reset();
        _keysZeroed = true;
    }

    public override string ToString() =>
        $"Keypair(local {LocalIndex:x8}, remote {RemoteIndex:x8}, {(IsInitiator ? "initiator" : "responder")})";
}

/// <summary>
/// A peer's three keypair slots (whitepaper 6.2 and the kernel's noise_keypairs): <c>current</c>
/// sends; <c>previous</c> still receives packets in flight under the old session; <c>next</c> holds
/// a responder's new keypair until the initiator confirms it by sending the first data packet
/// under it (a responder must not send first, or it could encrypt for an initiation replayed by an
/// attacker). Mutated only under the owning peer's lock; <see cref="Current"/> is read lock-free.
/// Retired keypairs are zeroed and their index freed by the caller-provided callback.
/// </summary>
public sealed class Keypairs
{
    private Keypair? _previous;
    private Keypair? _current;
    private Keypair? _next;

    public Keypair? Previous => Volatile.Read(ref _previous);
    public Keypair? Current => Volatile.Read(ref _current);
    public Keypair? Next => Volatile.Read(ref _next);

    /// <summary>
    /// Installs a freshly derived keypair (kernel add_new_keypair). Returns the keypairs it retired
    /// (at most two), which the caller zeroes and unindexes.
    /// </summary>
    internal void Add(Keypair keypair, out Keypair? retiredA, out Keypair? retiredB)
    {
        retiredA = null;
        retiredB = null;
        if (keypair.IsInitiator)
        {
            // The initiator may send at once. If a responder-side next was pending, it becomes the
            // previous (packets for it may still arrive) and current goes; else current becomes previous.
            if (_next is { } next)
            {
                Volatile.Write(ref _next, null);
                retiredA = _previous;
                retiredB = _current;
                Volatile.Write(ref _previous, next);
            }
            else
            {
                retiredA = _previous;
                Volatile.Write(ref _previous, _current);
            }
            Volatile.Write(ref _current, keypair);
        }
        else
        {
            // The responder waits for confirmation before it uses the new keypair, and puts
            // previous to rest: it is useless now (kernel add_new_keypair, wireguard-go).
            retiredA = _next;
            retiredB = _previous;
            Volatile.Write(ref _next, keypair);
            Volatile.Write(ref _previous, null);
        }
    }

    /// <summary>
    /// A packet authenticated under <paramref name="keypair"/>: if it is <c>next</c>, the initiator
    /// has confirmed it, so it becomes current (kernel received_with_keypair). True if it rotated;
    /// <paramref name="retired"/> is the old previous to zero.
    /// </summary>
    internal bool ReceivedWith(Keypair keypair, out Keypair? retired)
    {
        retired = null;
        if (!ReferenceEquals(_next, keypair))
            return false;
        retired = _previous;
        Volatile.Write(ref _previous, _current);
        Volatile.Write(ref _current, keypair);
        Volatile.Write(ref _next, null);
        return true;
    }

    /// <summary>Fills empty slots from a VM snapshot (the caller holds the peer's lock).</summary>
    internal void Restore(Keypair? previous, Keypair? current, Keypair? next)
    {
        Volatile.Write(ref _previous, previous);
        Volatile.Write(ref _current, current);
        Volatile.Write(ref _next, next);
    }

    /// <summary>Empties all three slots, returning what they held (for zeroing).</summary>
    internal void Clear(out Keypair? previous, out Keypair? current, out Keypair? next)
    {
        previous = _previous;
        current = _current;
        next = _next;
        Volatile.Write(ref _previous, null);
        Volatile.Write(ref _current, null);
        Volatile.Write(ref _next, null);
    }
}
