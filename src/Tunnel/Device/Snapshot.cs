using System.Net;
using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// VM-snapshot capture and restore: the device's whole mutable state, copied out into a
/// <see cref="TunnelDeviceState"/> and put back, so the fork simulation copies exactly what a
/// hypervisor's snapshot of guest memory would copy (keys, nonces, replay windows, randomness is
/// the host's). Nothing here runs on the packet path.
/// </summary>
public sealed partial class TunnelDevice
{
    /// <summary>
    /// A deep copy of all mutable state (see <see cref="TunnelDeviceState"/>). The device goes on
    /// unaffected. Take it while the device is quiescent (a paused guest): it holds the
    /// configuration lock and each peer's lock in turn, not all at once.
    /// </summary>
    public TunnelDeviceState CaptureState()
    {
        var state = new TunnelDeviceState();
        lock (_configLock)
        {
            if (_privateKey is not null)
                state.PrivateKey = state.Secret(_privateKey.Secret);
            if (_cookieChecker is not null)
            {
                state.CookieSecret = state.NewSecret(CookieChecker.SecretSize);
                state.CookieSecretSet = _cookieChecker.CaptureSecret(state.CookieSecret);
            }
            state.ListenPort = ListenPort;
            state.Fwmark = Fwmark;
            state.Mtu = Mtu;
            state.ForceUnderLoad = _forceUnderLoad;
            lock (_loadLock)
            {
                state.LoadWindowStart = _loadWindowStart;
                state.LoadWindowCount = _loadWindowCount;
                state.UnderLoadUntil = _underLoadUntil;
            }
            state.Fork = Fork.Capture();
            state.RateLimiter = _rateLimiter.Capture();

            Peer[] peers = _peerList.ToArray();
            state.Peers = Array.ConvertAll(peers, peer => peer.Capture(state));

            Dictionary<object, (int Peer, KeypairSlot Slot)> holders = Holders(peers);
            var indexes = new List<IndexCapture>();
            foreach (KeyValuePair<uint, object> entry in Indexes.Entries())
            {
                if (holders.TryGetValue(entry.Value, out (int Peer, KeypairSlot Slot) holder))
                    indexes.Add(new IndexCapture(entry.Key, holder.Peer, holder.Slot));
            }
            state.Indexes = [.. indexes];
        }
        return state;
    }

    /// <summary>
    /// Replaces this device's whole state with <paramref name="state"/> (which is only read, so
    /// many devices can be restored from one state). The device keeps its own clock, randomness,
    /// I/O, name and hot-path counter: the host provides those, as a restored VM
    /// gets the host's clock and (if the guard works) a reseeded generator. Given the same inputs
    /// and the same host-provided randomness, a restored device behaves exactly as the captured one
    /// would have, which is exactly the danger a VM fork creates.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The state was disposed (its keys are zeroed).</exception>
    public void RestoreState(TunnelDeviceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.ThrowIfDisposed();
        lock (_configLock)
        {
            RemoveAllPeers();
            Indexes.Clear();
            AllowedIps.Clear();

            SetPrivateKey(state.PrivateKey ?? new byte[PrivateKey.Size]);
            if (state.CookieSecret is not null)
                _cookieChecker?.RestoreSecret(state.CookieSecret, state.CookieSecretSet);
            ListenPort = state.ListenPort;
            Fwmark = state.Fwmark;
            Mtu = state.Mtu;
            _forceUnderLoad = state.ForceUnderLoad;
            lock (_loadLock)
            {
                _loadWindowStart = state.LoadWindowStart;
                _loadWindowCount = state.LoadWindowCount;
                _underLoadUntil = state.UnderLoadUntil;
            }
            Fork.Restore(state.Fork);
            _rateLimiter.Restore(state.RateLimiter);

            var peers = new Peer[state.Peers.Length];
            for (int i = 0; i < peers.Length; i++)
            {
                PeerCapture captured = state.Peers[i];
                Peer peer = AddPeer(captured.PublicKey.Bytes);
                peer.Restore(captured);
                foreach (IPNetwork network in captured.AllowedIps)
                    AllowedIps.Insert(network, peer);
                peers[i] = peer;
            }

            foreach (IndexCapture entry in state.Indexes)
            {
                object? target = entry.Slot == KeypairSlot.None ? peers[entry.Peer] : peers[entry.Peer].KeypairIn(entry.Slot);
                if (target is not null)
                    Indexes.TryInsertAt(entry.Index, target);
            }

        }
    }

    /// <summary>What an index can name (a peer's pending handshake, or a keypair in one of its
    /// slots), by peer position and slot: one lookup per index, not a scan of every peer.</summary>
    private static Dictionary<object, (int Peer, KeypairSlot Slot)> Holders(Peer[] peers)
    {
        var holders = new Dictionary<object, (int Peer, KeypairSlot Slot)>(peers.Length, ReferenceEqualityComparer.Instance);
        for (int i = 0; i < peers.Length; i++)
        {
            Peer peer = peers[i];
            holders[peer] = (i, KeypairSlot.None);
            foreach (KeypairSlot slot in (ReadOnlySpan<KeypairSlot>)[KeypairSlot.Previous, KeypairSlot.Current, KeypairSlot.Next])
            {
                if (peer.KeypairIn(slot) is { } keypair)
                    holders.TryAdd(keypair, (i, slot));
            }
        }
        return holders;
    }
}

public sealed partial class Peer
{
    internal Keypair? KeypairIn(KeypairSlot slot) => slot switch
    {
        KeypairSlot.Previous => Keypairs.Previous,
        KeypairSlot.Current => Keypairs.Current,
        KeypairSlot.Next => Keypairs.Next,
        _ => null,
    };

    internal PeerCapture Capture(TunnelDeviceState state)
    {
        var c = new PeerCapture { PublicKey = _publicKey };
        lock (_lock)
        {
            c.PresharedKey = _presharedKey is null ? state.NewSecret(SymmetricKey.Size) : state.Secret(_presharedKey.Bytes);
            if (_handshake is { } handshake)
            {
                lock (handshake.SyncRoot)
                {
                    c.Handshake = new HandshakeCapture
                    {
                        Stage = handshake.StageUnlocked,
                        LocalIndex = handshake.LocalIndexUnlocked,
                        RemoteIndex = handshake.RemoteIndexUnlocked,
                        LastTimestamp = handshake.LastTimestampUnlocked,
                        LastInitiationConsumed = handshake.LastInitiationConsumedUnlocked,
                        NoiseState = state.Secret(handshake.NoiseStateOrZeros),
                    };
                }
            }
            c.HandshakeIndex = _handshakeIndex;
            c.HandshakeGeneration = _handshakeGeneration;
            c.HandshakeDeferred = _handshakeDeferred;
            c.LastSentTimestamp = _lastSentTimestamp;
            c.Endpoint = _endpoint;
            c.HasEndpoint = _hasEndpoint;
            c.Previous = CaptureKeypair(state, Keypairs.Previous);
            c.Current = CaptureKeypair(state, Keypairs.Current);
            c.Next = CaptureKeypair(state, Keypairs.Next);
            c.LastSentHandshakeNanos = _lastSentHandshakeNanos;
            c.HasSentHandshake = _hasSentHandshake;
            c.InitiationNotBeforeNanos = _initiationNotBeforeNanos;
        }
        c.RxBytes = Volatile.Read(ref _rxBytes);
        c.TxBytes = Volatile.Read(ref _txBytes);
        c.LastHandshakeUtcTicks = Volatile.Read(ref _lastHandshakeUtcTicks);
        c.PersistentKeepaliveInterval = PersistentKeepaliveInterval;
        c.AllowedIps = [.. _device.AllowedIps.EntriesForPeer(this)];

        c.Cookie = state.NewSecret(CookieConstants.CookieSize);
        c.LastMac1 = new byte[CookieConstants.MacSize];
        c.CookieSet = Volatile.Read(ref _cookieGenerator) is { } generator
            ? generator.Capture(c.Cookie, c.LastMac1, out c.HasLastMac1)
            : null; // none made yet: no cookie, no mac1 (the buffers stay zero)

        c.RetransmitHandshakeDeadline = Volatile.Read(ref _retransmitHandshakeDeadline);
        c.SendKeepaliveDeadline = Volatile.Read(ref _sendKeepaliveDeadline);
        c.NewHandshakeDeadline = Volatile.Read(ref _newHandshakeDeadline);
        c.ZeroKeyMaterialDeadline = Volatile.Read(ref _zeroKeyMaterialDeadline);
        c.PersistentKeepaliveDeadline = Volatile.Read(ref _persistentKeepaliveDeadline);
        c.HandshakeAttempts = Volatile.Read(ref _handshakeAttempts);
        c.NeedAnotherKeepalive = _needAnotherKeepalive;
        c.SentLastMinuteHandshake = _sentLastMinuteHandshake;
        c.LastTrafficNanos = Volatile.Read(ref _lastTrafficNanos);

        // Staged packets are plaintext inner packets: held as secrets too.
        c.Staged = Array.ConvertAll(_staged.CopyAll(), packet =>
        {
            byte[] copy = state.Secret(packet);
            Array.Clear(packet);
            return copy;
        });
        return c;
    }

    private static KeypairCapture? CaptureKeypair(TunnelDeviceState state, Keypair? keypair)
    {
        if (keypair is null)
            return null;
        return new KeypairCapture
        {
            SendKey = state.Secret(keypair.SendKey),
            ReceiveKey = state.Secret(keypair.ReceiveKey),
            IsInitiator = keypair.IsInitiator,
            LocalIndex = keypair.LocalIndex,
            RemoteIndex = keypair.RemoteIndex,
            CreatedNanos = keypair.CreatedNanos,
            CreatedGeneration = keypair.CreatedGeneration,
            SendNonce = keypair.SendNonce,
            CanSend = keypair.SendingAllowed && !keypair.IsZeroed,
            ReplayFilter = keypair.ReplayFilter.Clone(),
        };
    }

    /// <summary>Loads a captured peer into this freshly added one (the device holds its config lock).</summary>
    internal void Restore(PeerCapture c)
    {
        lock (_lock)
        {
            SetPresharedKeyLocked(c.PresharedKey);
            if (_handshake is { } handshake && c.Handshake is { } h)
            {
                handshake.SetPresharedKey(c.PresharedKey);
                lock (handshake.SyncRoot)
                {
                    handshake.StageUnlocked = h.Stage;
                    handshake.LocalIndexUnlocked = h.LocalIndex;
                    handshake.RemoteIndexUnlocked = h.RemoteIndex;
                    handshake.LastTimestampUnlocked = h.LastTimestamp;
                    handshake.LastInitiationConsumedUnlocked = h.LastInitiationConsumed;
                    if (h.NoiseState.AsSpan().IndexOfAnyExcept((byte)0) >= 0)
                        h.NoiseState.CopyTo(handshake.NoiseState); // zeros: this fresh peer's own (none made) are as good
                }
            }
            _handshakeIndex = c.HandshakeIndex;
            _handshakeGeneration = c.HandshakeGeneration;
            _handshakeDeferred = c.HandshakeDeferred;
            _lastSentTimestamp = c.LastSentTimestamp;
            WriteEndpointLocked(c.Endpoint, c.HasEndpoint);
            Keypairs.Restore(RestoreKeypair(c.Previous), RestoreKeypair(c.Current), RestoreKeypair(c.Next));
            _lastSentHandshakeNanos = c.LastSentHandshakeNanos;
            _hasSentHandshake = c.HasSentHandshake;
            _initiationNotBeforeNanos = c.InitiationNotBeforeNanos;
        }
        Volatile.Write(ref _rxBytes, c.RxBytes);
        Volatile.Write(ref _txBytes, c.TxBytes);
        Volatile.Write(ref _lastHandshakeUtcTicks, c.LastHandshakeUtcTicks);
        Volatile.Write(ref _persistentKeepaliveInterval, c.PersistentKeepaliveInterval);
        if (Volatile.Read(ref _cookieGenerator) is not null || c.HasLastMac1 || c.CookieSet is not null)
            GetOrMakeCookieGenerator().Restore(c.Cookie, c.LastMac1, c.HasLastMac1, c.CookieSet);

        Volatile.Write(ref _retransmitHandshakeDeadline, c.RetransmitHandshakeDeadline);
        Volatile.Write(ref _sendKeepaliveDeadline, c.SendKeepaliveDeadline);
        Volatile.Write(ref _newHandshakeDeadline, c.NewHandshakeDeadline);
        Volatile.Write(ref _zeroKeyMaterialDeadline, c.ZeroKeyMaterialDeadline);
        Volatile.Write(ref _persistentKeepaliveDeadline, c.PersistentKeepaliveDeadline);
        Volatile.Write(ref _handshakeAttempts, c.HandshakeAttempts);
        _needAnotherKeepalive = c.NeedAnotherKeepalive;
        _sentLastMinuteHandshake = c.SentLastMinuteHandshake;
        Volatile.Write(ref _lastTrafficNanos, c.LastTrafficNanos);
        ScheduleTimers(); // the queue is not captured: it is rebuilt from the deadlines

        _staged.Clear();
        foreach (byte[] packet in c.Staged)
            _staged.Enqueue(packet);
    }

    private Keypair? RestoreKeypair(KeypairCapture? c)
    {
        if (c is null)
            return null;
        var keys = new SessionKeys(c.SendKey, c.ReceiveKey, c.IsInitiator, c.LocalIndex, c.RemoteIndex);
        return new Keypair(keys, this, c.CreatedNanos, c.CreatedGeneration, c.SendNonce, c.CanSend, c.ReplayFilter);
    }
}
