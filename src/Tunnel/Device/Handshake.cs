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
    private bool _staticStaticValid;

    public Handshake(StaticIdentity local, PublicKey remoteStatic)
    {
        RemoteStatic = remoteStatic;
        Local = local;
        Precompute();
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
    public bool CanHandshake { get { lock (_lock) return _staticStaticValid; } }

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
            Precompute();
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
            _staticStaticValid = false;
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
    internal bool StaticStaticValidUnlocked => _staticStaticValid;
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

    private void Precompute()
    {
        // ss = DH(s, rs) never changes for a peer, so it is computed once, as in the kernel and
        // wireguard-go; a zero result (low-order peer key) disables handshakes with that peer.
        _staticStaticValid = Local.PrivateKey.TryAgree(RemoteStatic, _staticStatic.Span);
    }
}
