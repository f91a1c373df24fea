using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// One remote peer of a <see cref="TunnelDevice"/> (wireguard-go's Peer, the kernel's wg_peer): its
/// static key, preshared key, handshake, cookie generator, keypairs, endpoint, staged packets,
/// timers (Timers.cs) and byte counters. Sending lives in Send.cs, receiving in Receive.cs.
/// </summary>
/// <remarks>
/// Thread safety: handshake steps, keypair rotation and the endpoint are changed under
/// <see cref="_lock"/>; encryption and decryption run outside it on a keypair read lock-free;
/// counters and timer deadlines are plain fields written with Interlocked/Volatile. All mutable
/// state is in plain fields of this object, its <see cref="Keypairs"/>, <see cref="Handshake"/> and
/// <see cref="StagedPackets"/>, so a later VM-snapshot capture can copy it.
/// </remarks>
public sealed partial class Peer
{
    private readonly Lock _lock = new();
    private readonly TunnelDevice _device;
    private readonly PublicKey _publicKey;
    // Null while the preshared key is all zeros (none): most peers of a big hub have none, and the
    // handshake keeps its own copy anyway. Guarded by _lock.
    private SymmetricKey? _presharedKey;
    // Made with the first handshake message we send (null until then): a hub's idle peers need
    // none, and it is 336 bytes and two BLAKE2s derivations per peer.
    private CookieGenerator? _cookieGenerator;
    private readonly StagedPackets _staged = new(Constants.MaxStagedPackets);

    // Null while the device has no private key: no handshake is possible.
    private Handshake? _handshake;
    // The index our pending handshake is registered under (0 = none). Kept here, not read back from
    // the handshake, because consuming an initiation resets the handshake's own index.
    private uint _handshakeIndex;
    // The hot-path counter when our part of the pending handshake was made (initiation sent or
    // response made). The keypair it yields carries this value, not the one at derivation: a
    // handshake that straddles a VM fork yields keys that both clones hold, so they must not send.
    private ulong _handshakeGeneration;
    // An initiation was wanted while the randomness was not known to be reseeded (see
    // ForkSeam.MarkRandomReseeded); the fork guard sends it once it is.
    private bool _handshakeDeferred;
    // The TAI64N of the last initiation we sent: the next one is always later (see Tai64N.NextWhitened).
    private Tai64N _lastSentTimestamp;

    // Written under _lock, always through WriteEndpointLocked; the send path reads them without
    // the lock (TryGetEndpoint), so that no lock is taken per packet on either direction's
    // steady-state path. _endpointSequence is the seqlock over the pair: odd while a write is in
    // progress (the kernel guards its endpoint with a rwlock; an Endpoint is 56 bytes, too wide for
    // one atomic store).
    private Endpoint _endpoint;
    private bool _hasEndpoint;
    private int _endpointSequence;

    private long _rxBytes;
    private long _txBytes;
    private long _lastHandshakeUtcTicks; // 0 = never
    private ushort _persistentKeepaliveInterval;
    private bool _removed;

    // The device's PeerList runs through these (writers hold the device's config lock; readers
    // follow NextInDevice without one).
    internal Peer? NextInDevice;
    internal Peer? PreviousInDevice;

    internal Peer(TunnelDevice device, PublicKey publicKey, StaticIdentity? identity)
    {
        _device = device;
        _publicKey = publicKey;
        if (identity is not null)
            _handshake = new Handshake(identity, publicKey);
        InitTimers();
    }

    public PublicKey PublicKey => _publicKey;

    public Keypairs Keypairs { get; } = new();

    internal TunnelDevice Device => _device;
    internal Handshake? Handshake => Volatile.Read(ref _handshake);
    internal uint HandshakeIndex { get { lock (_lock) return _handshakeIndex; } }
    internal int StagedCount => _staged.Count;
    internal bool HasStagedRing => _staged.HasRing;

    public void CopyPublicKey(Span<byte> dst) => _publicKey.CopyTo(dst);

    /// <summary>32 bytes; all zeros means none.</summary>
    public void SetPresharedKey(ReadOnlySpan<byte> psk)
    {
        lock (_lock)
        {
            SetPresharedKeyLocked(psk);
            _handshake?.SetPresharedKey(psk);
        }
    }

    public void CopyPresharedKey(Span<byte> dst)
    {
        lock (_lock)
        {
            if (_presharedKey is null)
                dst[..SymmetricKey.Size].Clear();
            else
                _presharedKey.Bytes.CopyTo(dst);
        }
    }

    private void SetPresharedKeyLocked(ReadOnlySpan<byte> psk) => SymmetricKey.SetOrNone(ref _presharedKey, psk);

    /// <summary>Where datagrams for this peer go; follows the last authenticated packet (roaming).</summary>
    public Endpoint? Endpoint
    {
        get { lock (_lock) return _hasEndpoint ? _endpoint : null; }
        set
        {
            lock (_lock)
                WriteEndpointLocked(value.GetValueOrDefault(), value.HasValue);
        }
    }

    /// <summary>Seconds between persistent keepalives, 0 = off. Setting it arms the timer at once.</summary>
    public ushort PersistentKeepaliveInterval
    {
        get => Volatile.Read(ref _persistentKeepaliveInterval);
        set
        {
            Volatile.Write(ref _persistentKeepaliveInterval, value);
            TimersPersistentKeepaliveSet(value);
        }
    }

    /// <summary>Wall-clock time of the last completed handshake, or null.</summary>
    public DateTimeOffset? LastHandshakeTime
    {
        get
        {
            long ticks = Volatile.Read(ref _lastHandshakeUtcTicks);
            return ticks == 0 ? null : new DateTimeOffset(ticks, TimeSpan.Zero);
        }
    }

    /// <summary>
    /// Bytes received from / sent to this peer, counted as the kernel counts them: the whole
    /// WireGuard message (UDP payload) of every authenticated transport packet, keepalives included,
    /// padding and the 32 bytes of header and tag included; plus each handshake initiation (148)
    /// and response (92) sent or accepted. Cookie replies and rejected packets do not count. This
    /// is what the kernel's wg_socket_send_*_to_peer (tx += skb->len), wg_receive_handshake_packet
    /// (rx += skb->len) and wg_packet_consume_data_done (rx += message_data_len(padded length))
    /// add up to; netns.sh checks it: 10 pings of 84 bytes (padded to 96, 128 on the wire) give the
    /// initiator tx = 148 + 10 x 128 = 1428 (1460 with a keepalive) and rx = 92 + 10 x 128 = 1372.
    /// </summary>
    public ulong RxBytes => (ulong)Volatile.Read(ref _rxBytes);

    /// <inheritdoc cref="RxBytes"/>
    public ulong TxBytes => (ulong)Volatile.Read(ref _txBytes);

    /// <summary>Sends an initiation now, unless one was sent less than REKEY_TIMEOUT ago.</summary>
    public void InitiateHandshake() => SendHandshakeInitiation(isRetry: false);

    /// <summary>Sends the staged packets, or an empty keepalive when none are staged.</summary>
    public void SendKeepalive() => SendKeepaliveOrStaged();

    /// <summary>
    /// Stops the current (and pending next) keypair from sending and drops the handshake in
    /// progress, so the next packet starts a new handshake, at once: the REKEY_TIMEOUT spacing of
    /// initiations restarts (kernel wg_noise_expire_current_peer_keypairs, which also calls
    /// wg_noise_reset_last_sent_handshake). Receiving still works for packets in flight.
    /// </summary>
    public void ExpireCurrentKeypairs()
    {
        lock (_lock)
        {
            ClearHandshakeLocked();
            RestartHandshakeSpacingLocked();
            Keypairs.Current?.DisallowSending();
            Keypairs.Next?.DisallowSending();
        }
    }

    /// <summary>Zeroes the handshake in progress and all three keypairs, freeing their indexes.</summary>
    public void ClearSessions()
    {
        lock (_lock)
        {
            ClearHandshakeLocked();
            Keypairs.Clear(out Keypair? previous, out Keypair? current, out Keypair? next);
            RetireLocked(previous);
            RetireLocked(current);
            RetireLocked(next);
        }
    }

    /// <summary>True while the peer has a keypair or a handshake in progress: a session worth rekeying.</summary>
    internal bool HasSession
    {
        get
        {
            lock (_lock)
                return _handshakeIndex != 0 || Keypairs.Previous is not null || Keypairs.Current is not null
                    || Keypairs.Next is not null || _handshake?.Stage is HandshakeStage.InitiationConsumed;
        }
    }

    /// <summary>
    /// True if the handshake in progress and every keypair were started at pull-counter
    /// <paramref name="generation"/>: with the reseed gate on, that means after this VM's own
    /// reseed, so nothing of it was copied by a snapshot (a fork moves the counter first).
    /// </summary>
    internal bool SessionMadeAt(ulong generation)
    {
        lock (_lock)
        {
            bool handshakeInProgress = _handshakeIndex != 0 || _handshake?.Stage is HandshakeStage.InitiationConsumed;
            return (!handshakeInProgress || _handshakeGeneration == generation)
                && (Keypairs.Previous?.CreatedGeneration ?? generation) == generation
                && (Keypairs.Current?.CreatedGeneration ?? generation) == generation
                && (Keypairs.Next?.CreatedGeneration ?? generation) == generation;
        }
    }

    /// <summary>True if an initiation was held back because the randomness was not known to be reseeded.</summary>
    internal bool HandshakeDeferred { get { lock (_lock) return _handshakeDeferred; } }

    /// <summary>Lets the next initiation leave at once, whatever the REKEY_TIMEOUT spacing says (see
    /// <see cref="RestartHandshakeSpacingLocked"/> for the one limit that remains).</summary>
    internal void ResetLastSentHandshake()
    {
        lock (_lock)
            RestartHandshakeSpacingLocked();
    }

    /// <summary>
    /// Restarts the REKEY_TIMEOUT spacing of initiations so the next may leave at once, but never
    /// sooner than the responder takes it: it refuses a second initiation from us within
    /// 1/INITIATIONS_PER_SECOND of the last (its flood limit). Sessions cleared twice in quick
    /// succession (vmgenid and virtio-rng both signalling one fork) would otherwise send a second
    /// initiation that is refused, while the answer to the first finds its handshake gone: the
    /// tunnel would stay down for a whole REKEY_TIMEOUT. An initiation wanted before then leaves on
    /// the retransmit timer when the responder will take it (see SendHandshakeInitiation).
    /// </summary>
    private void RestartHandshakeSpacingLocked()
    {
        if (!_hasSentHandshake)
            return;
        _hasSentHandshake = false;
        long acceptedFrom = _lastSentHandshakeNanos + Constants.InitiationRespacingNanos;
        _initiationNotBeforeNanos = _device.Clock.MonotonicNanos < acceptedFrom ? acceptedFrom : 0;
    }

    public override string ToString() => $"Peer({_publicKey})";

    // ---- used by the device ----

    /// <summary>The device's key changed (or was removed): rebind the handshake, drop every session.</summary>
    internal void SetIdentity(StaticIdentity? identity)
    {
        lock (_lock)
        {
            ClearHandshakeLocked();
            if (identity is null)
            {
                _handshake?.Dispose();
                Volatile.Write(ref _handshake, null);
            }
            else if (_handshake is null)
            {
                var handshake = new Handshake(identity, _publicKey);
                if (_presharedKey is not null)
                    handshake.SetPresharedKey(_presharedKey.Bytes);
                Volatile.Write(ref _handshake, handshake);
            }
            else
            {
                _handshake.SetLocalIdentity(identity);
            }
        }
        ExpireCurrentKeypairs();
    }

    /// <summary>Removal from the device: zero everything and stop all timers.</summary>
    internal void Remove()
    {
        ClearSessions();
        lock (_lock)
        {
            _removed = true;
            _handshake?.Dispose();
            Volatile.Write(ref _handshake, null);
            _presharedKey?.Dispose();
            Volatile.Read(ref _cookieGenerator)?.Dispose();
        }
        _staged.Clear();
        StopTimers();
    }

    internal bool IsRemoved { get { lock (_lock) return _removed; } }

    private void ClearHandshakeLocked()
    {
        FreeHandshakeIndexLocked();
        _handshake?.Clear();
    }

    private void FreeHandshakeIndexLocked()
    {
        if (_handshakeIndex != 0)
        {
            _device.Indexes.Remove(_handshakeIndex, this);
            _handshakeIndex = 0;
        }
    }

    /// <summary>
    /// Retires a keypair that left its slot and frees its index; it is zeroed once no data thread
    /// can still hold it (kernel wg_noise_keypair_put: call_rcu).
    /// </summary>
    private void RetireLocked(Keypair? keypair)
    {
        if (keypair is null)
            return;
        _device.Indexes.Remove(keypair.LocalIndex, keypair);
        keypair.Retire();
        _device.Rcu.CallRcu(keypair);
    }

    /// <summary>
    /// Turns a completed handshake into a keypair: its handshake index now names the keypair, and
    /// it goes into the slots (current for the initiator, next for the responder).
    /// </summary>
    private bool DeriveKeypairLocked(long now)
    {
        if (_handshake is null)
            return false;
        SessionKeys? keys = NoiseProtocol.BeginSession(_handshake);
        if (keys is null)
            return false;
        var keypair = new Keypair(keys, this, now, _handshakeGeneration);
        if (!_device.Indexes.Replace(_handshakeIndex, this, keypair))
        {
            keypair.Zero(); // never published: no reader can hold it
            _handshakeIndex = 0;
            return false;
        }
        _handshakeIndex = 0;
        Keypairs.Add(keypair, out Keypair? retiredA, out Keypair? retiredB);
        RetireLocked(retiredA);
        RetireLocked(retiredB);
        _sentLastMinuteHandshake = false;
        return true;
    }

    /// <summary>The endpoint, read without the lock: a read that overlapped a write is retried.</summary>
    internal bool TryGetEndpoint(out Endpoint endpoint)
    {
        var spin = new SpinWait();
        while (true)
        {
            int before = Volatile.Read(ref _endpointSequence);
            endpoint = _endpoint;
            bool has = _hasEndpoint;
            // The copy must be complete before the sequence is read again (a load-load fence the
            // acquire read above does not give on its own).
            Interlocked.MemoryBarrier();
            if ((before & 1) == 0 && Volatile.Read(ref _endpointSequence) == before)
                return has;
            spin.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>Under <c>_lock</c>: the only writer of the endpoint (see TryGetEndpoint).</summary>
    private void WriteEndpointLocked(in Endpoint endpoint, bool hasEndpoint)
    {
        int sequence = _endpointSequence;
        Volatile.Write(ref _endpointSequence, sequence + 1);
        // Readers must see the odd sequence before any byte of the new endpoint.
        Interlocked.MemoryBarrier();
        _endpoint = endpoint;
        _hasEndpoint = hasEndpoint;
        Volatile.Write(ref _endpointSequence, sequence + 2);
    }

    /// <summary>Roaming: the endpoint follows the last authenticated packet (whitepaper 2.1).</summary>
    private void UpdateEndpoint(in Endpoint from)
    {
        // The steady state (the same source as last time) without the lock the send path takes:
        // a torn read that still equals `from` means another update is racing this one, and the
        // result (theirs last) is one the lock would have allowed too.
        if (Volatile.Read(ref _hasEndpoint) && _endpoint == from && _endpoint.SameSource(from))
            return;
        lock (_lock)
        {
            // The source counts too: after the peer writes to another of our addresses, replies
            // follow it there (kernel: endpoint_eq compares src4/src6 as well).
            if (_hasEndpoint && _endpoint == from && _endpoint.SameSource(from))
                return;
            WriteEndpointLocked(from, hasEndpoint: true);
        }
    }

    /// <summary>The cookie generator, or null before the first handshake message we sent (tests:
    /// idle peers hold none).</summary>
    internal CookieGenerator? CookieGeneratorIfMade => Volatile.Read(ref _cookieGenerator);

    /// <summary>The cookie generator, made on first use. Made lock-free (one of two racers wins),
    /// as the snapshot restore makes it outside the peer lock.</summary>
    private CookieGenerator GetOrMakeCookieGenerator()
    {
        if (Volatile.Read(ref _cookieGenerator) is { } generator)
            return generator;
        var made = new CookieGenerator(PublicKey);
        if (Interlocked.CompareExchange(ref _cookieGenerator, made, null) is { } raced)
        {
            made.Dispose();
            return raced;
        }
        return made;
    }

    private void AddRx(int bytes) => Interlocked.Add(ref _rxBytes, bytes);
    private void AddTx(int bytes) => Interlocked.Add(ref _txBytes, bytes);
}
