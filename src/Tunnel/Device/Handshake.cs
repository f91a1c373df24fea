using Tunnel.Crypto;
using Tunnel.Noise;

namespace Tunnel.Device;

/// <summary>Where a peer's handshake stands (wireguard-go's handshakeState).</summary>
public enum HandshakeStage
{
    Zeroed,
    InitiationCreated,
    InitiationConsumed,
    ResponseCreated,
    ResponseConsumed,
}

/// <summary>Finds a peer's handshake by the static public key an initiation revealed.</summary>
public interface IHandshakeLookup
{
    Handshake? FindByStaticKey(in PublicKey remoteStatic);
}

/// <summary>
/// One peer's handshake state (wireguard-go's Handshake, the kernel's noise_handshake): the
/// in-progress Noise state (ck, h, ephemeral keys) in pinned memory, the peer's static key, the
/// precomputed static-static DH, the preshared key, the session indexes and the timestamp of the
/// last accepted initiation. <see cref="NoiseProtocol"/> creates and consumes the messages.
/// All members are safe to call from several threads (one lock per handshake).
/// </summary>
public sealed class Handshake : IDisposable
{
    // The zeros a peer without a handshake in progress (or without a preshared key) reads.
    private static readonly byte[] s_zeroNoiseState = new byte[HandshakeState.Size];
    private static readonly byte[] s_noPresharedKey = new byte[SymmetricKey.Size];

    private readonly Lock _lock = new();
    // The three buffers below are made when first needed, not with the peer: a hub's idle peers
    // (most of 100,000) never handshake, and these are 424 bytes of each one's heap.
    // ck, h and the ephemeral keys: made by the first message created or consumed.
    private SecretBuffer? _noiseState;
    // ss = DH(s, rs): computed on first use, not when the peer is added (see StaticStaticValidUnlocked).
    private SecretBuffer? _staticStatic;
    private StaticStaticState _staticStaticState;
    // Null while the preshared key is all zeros (none, as for most peers).
    private SymmetricKey? _presharedKey;

    public Handshake(StaticIdentity local, PublicKey remoteStatic)
    {
        RemoteStatic = remoteStatic;
        Local = local;
    }

    public StaticIdentity Local { get; private set; }
    public PublicKey RemoteStatic { get; }

    public HandshakeStage Stage { get { lock (_lock) return StageUnlocked; } }

    /// <summary>Our index for this handshake (the sender index we put in our message).</summary>
    public uint LocalIndex { get { lock (_lock) return LocalIndexUnlocked; } }

    /// <summary>The peer's index (the sender index of its message).</summary>
    public uint RemoteIndex { get { lock (_lock) return RemoteIndexUnlocked; } }

    /// <summary>The TAI64N of the last initiation accepted from this peer; kept across <see cref="Clear"/>.</summary>
    public Tai64N LastTimestamp { get { lock (_lock) return LastTimestampUnlocked; } }

    /// <summary>False if the peer's static key is a low-order point: no handshake is possible.</summary>
    public bool CanHandshake { get { lock (_lock) return StaticStaticValidUnlocked; } }

    /// <summary>Sets the preshared key (32 bytes; all zeros means none, as in WireGuard).</summary>
    public void SetPresharedKey(ReadOnlySpan<byte> presharedKey)
    {
        lock (_lock) SymmetricKey.SetOrNone(ref _presharedKey, presharedKey);
    }

    /// <summary>The device's private key changed: recompute ss and drop any handshake in progress.</summary>
    public void SetLocalIdentity(StaticIdentity local)
    {
        lock (_lock)
        {
            Local = local;
            ClearUnlocked();
            _staticStatic?.Clear();
            _staticStaticState = StaticStaticState.NotComputed;
        }
    }

    /// <summary>Zeroes the handshake in progress (ck, h, ephemeral keys) and forgets its indexes.
    /// Keeps the static keys, ss, psk and the last timestamp, like the kernel's handshake_zero.</summary>
    public void Clear()
    {
        lock (_lock) ClearUnlocked();
    }

    public void Dispose()
    {
        lock (_lock)
        {
            ClearUnlocked();
            _staticStatic?.Dispose();
            _presharedKey?.Dispose();
            _staticStaticState = StaticStaticState.Invalid;
        }
    }

    public override string ToString() => $"Handshake(peer {RemoteStatic}, {Stage})";

    // ---- used by NoiseProtocol under SyncRoot ----

    internal Lock SyncRoot => _lock;
    internal HandshakeStage StageUnlocked { get; set; }
    internal uint LocalIndexUnlocked { get; set; }
    internal uint RemoteIndexUnlocked { get; set; }
    internal Tai64N LastTimestampUnlocked { get; set; }
    internal TimeSpan? LastInitiationConsumedUnlocked { get; set; }
    /// <summary>
    /// True when ss is usable, computing it on the first call. ss = DH(s, rs) never changes for a
    /// peer, so it is computed once, as the kernel and wireguard-go do; but when the peer is used,
    /// not when it is added: X25519 is most of what adding a peer costs, and a hub that loads
    /// 100,000 peers would spend seconds on it before it is ready, for peers that may never
    /// connect. A zero result (low-order peer key) disables handshakes with that peer.
    /// </summary>
    internal bool StaticStaticValidUnlocked
    {
        get
        {
            if (_staticStaticState == StaticStaticState.NotComputed)
                _staticStaticState = Local.PrivateKey.TryAgree(RemoteStatic, (_staticStatic ??= new SecretBuffer(32)).Span)
                    ? StaticStaticState.Valid
                    : StaticStaticState.Invalid;
            return _staticStaticState == StaticStaticState.Valid;
        }
    }
    /// <summary>The Noise state to write (made on first use).</summary>
    internal Span<byte> NoiseState => (_noiseState ??= new SecretBuffer(HandshakeState.Size)).Span;
    /// <summary>The Noise state as it is, zeros if none was made: for readers that must not make one.</summary>
    internal ReadOnlySpan<byte> NoiseStateOrZeros => _noiseState is { } noise ? noise.Span : s_zeroNoiseState;
    /// <summary>Valid after <see cref="StaticStaticValidUnlocked"/> returned true.</summary>
    internal ReadOnlySpan<byte> StaticStatic => _staticStatic!.Span;
    internal ReadOnlySpan<byte> PresharedKey => _presharedKey is { } psk ? psk.Bytes : s_noPresharedKey;

    /// <summary>True once a handshake message was made or consumed (tests: idle peers hold none).</summary>
    internal bool HasNoiseState { get { lock (_lock) return _noiseState is not null; } }
    /// <summary>True once ss was computed (tests).</summary>
    internal bool HasStaticStatic { get { lock (_lock) return _staticStatic is not null; } }
    /// <summary>True while a preshared key other than zeros is set (tests).</summary>
    internal bool HasPresharedKey { get { lock (_lock) return _presharedKey is not null; } }

    /// <summary>
    /// True if every secret this handshake ever held is zero (tests: after removal). Reads the
    /// buffers even after <see cref="Dispose"/>, which zeroes but keeps them.
    /// </summary>
    internal bool SecretsZeroed
    {
        get
        {
            lock (_lock)
                return NoiseStateOrZeros.IndexOfAnyExcept((byte)0) < 0
                    && (_staticStatic is null || _staticStatic.Span.IndexOfAnyExcept((byte)0) < 0)
                    && PresharedKey.IndexOfAnyExcept((byte)0) < 0;
        }
    }

    /// <summary>h of the handshake in progress (after a full handshake: the handshake hash).</summary>
    internal ReadOnlySpan<byte> HandshakeHash => NoiseStateOrZeros.Slice(SymmetricState.HashLength, SymmetricState.HashLength);

    internal void ClearUnlocked()
    {
        _noiseState?.Clear();
        StageUnlocked = HandshakeStage.Zeroed;
        LocalIndexUnlocked = 0;
        RemoteIndexUnlocked = 0;
    }

    private enum StaticStaticState : byte
    {
        NotComputed,
        Valid,
        Invalid,
    }
}
