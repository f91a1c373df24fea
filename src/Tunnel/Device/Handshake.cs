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
    private readonly Lock _lock = new();
    private readonly SecretBuffer _noiseState = new(HandshakeState.Size);
    private readonly SecretBuffer _staticStatic = new(32);
    private readonly SymmetricKey _presharedKey = new();
    // ss = DH(s, rs): computed on first use, not when the peer is added (see StaticStaticValidUnlocked).
    private StaticStaticState _staticStaticState;

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
        lock (_lock) _presharedKey.Set(presharedKey);
    }

    /// <summary>The device's private key changed: recompute ss and drop any handshake in progress.</summary>
    public void SetLocalIdentity(StaticIdentity local)
    {
        lock (_lock)
        {
            Local = local;
            ClearUnlocked();
            _staticStatic.Clear();
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
            _staticStatic.Dispose();
            _presharedKey.Dispose();
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
                _staticStaticState = Local.PrivateKey.TryAgree(RemoteStatic, _staticStatic.Span)
                    ? StaticStaticState.Valid
                    : StaticStaticState.Invalid;
            return _staticStaticState == StaticStaticState.Valid;
        }
    }
    internal Span<byte> NoiseState => _noiseState.Span;
    internal ReadOnlySpan<byte> StaticStatic => _staticStatic.Span;
    internal ReadOnlySpan<byte> PresharedKey => _presharedKey.Bytes;

    /// <summary>h of the handshake in progress (after a full handshake: the handshake hash).</summary>
    internal ReadOnlySpan<byte> HandshakeHash => _noiseState.Span.Slice(SymmetricState.HashLength, SymmetricState.HashLength);

    internal void ClearUnlocked()
    {
        _noiseState.Clear();
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
