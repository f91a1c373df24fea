using ForkNotify;
using Tunnel.Crypto;

namespace Tunnel.Noise;

/// <summary>
/// Noise section 5.3, HandshakeState, for the one pattern WireGuard uses:
/// <code>
/// IKpsk2:
///   &lt;- s
///   ...
///   -> e, es, s, ss
///   &lt;- e, ee, se, psk
/// </code>
/// A view over <see cref="Size"/> caller-owned bytes: the <see cref="SymmetricState"/> (ck, h, k),
/// the local ephemeral pair e and the remote ephemeral re. The static keys s and rs, the psk and
/// the precomputed ss are passed in, because WireGuard keeps them per device and per peer.
/// Payloads are parameters: WireGuard sends a 12-byte TAI64N timestamp then nothing, while the
/// published Noise vectors use other payloads through the same code.
/// Methods return false on any failure (bad tag, low-order key); callers run them on a scratch
/// copy and commit only on success, so a bad message never changes a peer's state.
/// </summary>
public ref struct HandshakeState
{
    public const int KeySize = 32;
    public const int TagSize = CipherState.TagSize;
    public const int Size = SymmetricState.Size + 3 * KeySize;

    /// <summary>Message A is e (32) || encrypted s (32+16) || encrypted payload (n+16).</summary>
    public static int MessageALength(int payloadLength) => KeySize + KeySize + TagSize + payloadLength + TagSize;

    /// <summary>Message B is e (32) || encrypted payload (n+16).</summary>
    public static int MessageBLength(int payloadLength) => KeySize + payloadLength + TagSize;

    private SymmetricState _symmetric;
    private readonly Span<byte> _ephemeralPrivate;
    private readonly Span<byte> _ephemeralPublic;
    private readonly Span<byte> _remoteEphemeral;

    public HandshakeState(Span<byte> storage)
    {
        if (storage.Length != Size)
            throw new ArgumentException($"HandshakeState needs {Size} bytes.", nameof(storage));
        _symmetric = new SymmetricState(storage[..SymmetricState.Size]);
        _ephemeralPrivate = storage.Slice(SymmetricState.Size, KeySize);
        _ephemeralPublic = storage.Slice(SymmetricState.Size + KeySize, KeySize);
        _remoteEphemeral = storage.Slice(SymmetricState.Size + 2 * KeySize, KeySize);
    }

    public readonly ReadOnlySpan<byte> ChainingKey => _symmetric.ChainingKey;

    /// <summary>h: after message B this is the handshake hash (channel binding value).</summary>
    public readonly ReadOnlySpan<byte> Hash => _symmetric.Hash;

    public readonly ReadOnlySpan<byte> RemoteEphemeral => _remoteEphemeral;

    /// <summary>
    /// Initialize(): the precomputed name/prologue state, then the pre-message "&lt;- s":
    /// MixHash(responder's static public key), done by both sides.
    /// </summary>
    public void Initialize(NoiseConstruction construction, PublicKey responderStatic)
    {
        _symmetric.Initialize(construction.InitialChainingKey, construction.InitialHash);
        _symmetric.MixHash(responderStatic.Bytes);
    }

    // ---- -> e, es, s, ss ----

    /// <summary>Initiator writes message A into <paramref name="message"/> (<see cref="MessageALength"/> bytes).</summary>
    public bool WriteMessageA(PrivateKey s, PublicKey rs, scoped ReadOnlySpan<byte> precomputedSs,
        IRandomGenerator random, scoped ReadOnlySpan<byte> payload, scoped Span<byte> message)
    {
        if (message.Length != MessageALength(payload.Length))
            return false;
        Span<byte> dh = stackalloc byte[KeySize];
        try
        {
            // e
            GenerateEphemeral(random);
            _ephemeralPublic.CopyTo(message[..KeySize]);
            MixEphemeral(_ephemeralPublic);
            // es
            if (!Sodium.ScalarMult(dh, _ephemeralPrivate, rs.Bytes))
                return false;
            _symmetric.MixKey(dh);
            // s
            _symmetric.EncryptAndHash(s.PublicKey.Bytes, message.Slice(KeySize, KeySize + TagSize));
            // ss (precomputed per peer: DH(s, rs))
            _symmetric.MixKey(precomputedSs);
            // payload
            _symmetric.EncryptAndHash(payload, message[(2 * KeySize + TagSize)..]);
            return true;
        }
        finally
        {
            Sodium.MemZero(dh);
        }
    }

    /// <summary>
    /// Responder reads message A up to and including s, and returns the initiator's static key so
    /// the caller can find the peer (and its precomputed ss) before <see cref="ReadMessageAPayload"/>.
    /// </summary>
    public bool ReadMessageAStatic(PrivateKey s, scoped ReadOnlySpan<byte> message, out PublicKey rs)
    {
        rs = default;
        if (message.Length < MessageALength(0))
            return false;
        Span<byte> dh = stackalloc byte[KeySize];
        Span<byte> staticKey = stackalloc byte[KeySize];
        try
        {
            // e
            message[..KeySize].CopyTo(_remoteEphemeral);
            MixEphemeral(_remoteEphemeral);
            // es
            if (!Sodium.ScalarMult(dh, s.Secret, _remoteEphemeral))
                return false;
            _symmetric.MixKey(dh);
            // s
            if (!_symmetric.DecryptAndHash(message.Slice(KeySize, KeySize + TagSize), staticKey))
                return false;
            rs = new PublicKey(staticKey);
            return true;
        }
        finally
        {
            Sodium.MemZero(dh);
        }
    }

    /// <summary>Responder finishes message A: ss, then the payload (message length - 96 bytes).</summary>
    public bool ReadMessageAPayload(scoped ReadOnlySpan<byte> precomputedSs, scoped ReadOnlySpan<byte> message, scoped Span<byte> payload)
    {
        int offset = 2 * KeySize + TagSize;
        if (message.Length < offset + TagSize || payload.Length != message.Length - offset - TagSize)
            return false;
        // ss
        _symmetric.MixKey(precomputedSs);
        // payload
        return _symmetric.DecryptAndHash(message[offset..], payload);
    }

    // ---- <- e, ee, se, psk ----

    /// <summary>Responder writes message B into <paramref name="message"/> (<see cref="MessageBLength"/> bytes).</summary>
    public bool WriteMessageB(PublicKey rs, scoped ReadOnlySpan<byte> psk, IRandomGenerator random,
        scoped ReadOnlySpan<byte> payload, scoped Span<byte> message)
    {
        if (message.Length != MessageBLength(payload.Length))
            return false;
        Span<byte> dh = stackalloc byte[KeySize];
        try
        {
            // e
            GenerateEphemeral(random);
            _ephemeralPublic.CopyTo(message[..KeySize]);
            MixEphemeral(_ephemeralPublic);
            // ee
            if (!Sodium.ScalarMult(dh, _ephemeralPrivate, _remoteEphemeral))
                return false;
            _symmetric.MixKey(dh);
            // se (responder side: DH(e, rs))
            if (!Sodium.ScalarMult(dh, _ephemeralPrivate, rs.Bytes))
                return false;
            _symmetric.MixKey(dh);
            // psk
            _symmetric.MixKeyAndHash(psk);
            // payload
            _symmetric.EncryptAndHash(payload, message[KeySize..]);
            return true;
        }
        finally
        {
            Sodium.MemZero(dh);
        }
    }

    /// <summary>Initiator reads message B; the payload is message length - 48 bytes.</summary>
    public bool ReadMessageB(PrivateKey s, scoped ReadOnlySpan<byte> psk, scoped ReadOnlySpan<byte> message, scoped Span<byte> payload)
    {
        if (message.Length < MessageBLength(0) || payload.Length != message.Length - MessageBLength(0))
            return false;
        Span<byte> dh = stackalloc byte[KeySize];
        try
        {
            // e
            message[..KeySize].CopyTo(_remoteEphemeral);
            MixEphemeral(_remoteEphemeral);
            // ee
            if (!Sodium.ScalarMult(dh, _ephemeralPrivate, _remoteEphemeral))
                return false;
            _symmetric.MixKey(dh);
            // se (initiator side: DH(s, re))
            if (!Sodium.ScalarMult(dh, s.Secret, _remoteEphemeral))
                return false;
            _symmetric.MixKey(dh);
            // psk
            _symmetric.MixKeyAndHash(psk);
            // payload
            return _symmetric.DecryptAndHash(message[KeySize..], payload);
        }
        finally
        {
            Sodium.MemZero(dh);
        }
    }

    /// <summary>Split(): the two transport keys, initiator-to-responder first.</summary>
    public readonly void Split(scoped Span<byte> initiatorToResponder, scoped Span<byte> responderToInitiator) =>
        _symmetric.Split(initiatorToResponder, responderToInitiator);

    // The "e" token with a psk modifier: MixHash(e.pub), and MixKey(e.pub) (Noise section 9.2).
    private void MixEphemeral(ReadOnlySpan<byte> ephemeralPublic)
    {
        _symmetric.MixHash(ephemeralPublic);
        _symmetric.MixKey(ephemeralPublic);
    }

    private readonly void GenerateEphemeral(IRandomGenerator random)
    {
        random.Fill(_ephemeralPrivate);
        PrivateKey.Clamp(_ephemeralPrivate);
        Sodium.ScalarMultBase(_ephemeralPublic, _ephemeralPrivate);
    }
}
