using ForkNotify;
using Tunnel.Crypto;
using Tunnel.Noise;

namespace Tunnel.Device;

/// <summary>
/// WireGuard's handshake (whitepaper section 5.4, wireguard-go's noise-protocol.go): creating and
/// consuming the initiation and the response on a peer's <see cref="Handshake"/>, then deriving
/// the transport keys. The Noise work is done by <see cref="HandshakeState"/>; this class adds the
/// WireGuard framing, the indexes, TAI64N replay protection and the handshake's lifecycle.
/// </summary>
/// <remarks>
/// Each operation has two layers. The inner one takes any payload and the Noise message alone;
/// WireGuard's outer one frames a 148- or 92-byte message around it with a TAI64N (initiation) or
/// empty (response) payload. The inner layer exists so the cacophony IKpsk2 vector runs through
/// the very code the product uses. Every operation works on a stack copy of the state and commits
/// only on success, so bad input never changes a handshake. mac1/mac2 are the cookie layer's job
/// (<see cref="CookieGenerator"/>, <see cref="CookieChecker"/>).
/// </remarks>
public static class NoiseProtocol
{
    // ---- initiation: -> e, es, s, ss, {timestamp} ----

    /// <summary>
    /// Writes a 148-byte initiation (mac1 and mac2 left zero) with our new index
    /// <paramref name="senderIndex"/> and <paramref name="timestamp"/>, and moves the handshake to
    /// <see cref="HandshakeStage.InitiationCreated"/>. False if the peer's key is unusable.
    /// </summary>
    public static bool CreateInitiation(Handshake handshake, uint senderIndex, Tai64N timestamp,
        IRandomGenerator random, Span<byte> message)
    {
        if (message.Length != MessageInitiation.Size)
            return false;
        Span<byte> payload = stackalloc byte[Tai64N.Size];
        timestamp.WriteTo(payload);
        message.Clear();
        MessageHeader.WriteType(message, MessageType.Initiation);
        MessageHeader.WriteIndex(message, MessageInitiation.SenderOffset, senderIndex);
        return CreateInitiation(handshake, senderIndex, random, payload,
            message.Slice(MessageInitiation.NoiseOffset, MessageInitiation.NoiseLength));
    }

    /// <summary>Inner layer: Noise message A with any payload into <paramref name="noiseMessage"/>.</summary>
    public static bool CreateInitiation(Handshake handshake, uint senderIndex, IRandomGenerator random,
        ReadOnlySpan<byte> payload, Span<byte> noiseMessage)
    {
        Span<byte> scratch = stackalloc byte[HandshakeState.Size];
        try
        {
            lock (handshake.SyncRoot)
            {
                if (!handshake.StaticStaticValidUnlocked)
                    return false;
                var state = new HandshakeState(scratch);
                state.Initialize(handshake.Local.Construction, handshake.RemoteStatic);
                if (!state.WriteMessageA(handshake.Local.PrivateKey, handshake.RemoteStatic, handshake.StaticStatic,
                        random, payload, noiseMessage))
                    return false;
                scratch.CopyTo(handshake.NoiseState);
                handshake.StageUnlocked = HandshakeStage.InitiationCreated;
                handshake.LocalIndexUnlocked = senderIndex;
                handshake.RemoteIndexUnlocked = 0;
                return true;
            }
        }
        finally
        {
            Sodium.MemZero(scratch);
        }
    }

    /// <summary>
    /// The least time between two initiations accepted from one peer (the kernel's
    /// 1 s / INITIATIONS_PER_SECOND): a flood of valid initiations cannot make us compute a
    /// response for each.
    /// </summary>
    public static readonly TimeSpan MinInitiationInterval = TunnelDevice.ToTimeSpan(Constants.InitiationMinIntervalNanos);

    /// <summary>
    /// Consumes a 148-byte initiation (its macs already checked by the caller): finds the peer by
    /// the static key inside, refuses a timestamp not strictly newer than the last accepted one
    /// (a replay) or an initiation less than <see cref="MinInitiationInterval"/> after the last
    /// accepted one (a flood), and moves that peer's handshake to
    /// <see cref="HandshakeStage.InitiationConsumed"/>. <paramref name="now"/> is monotonic time.
    /// Returns the peer's handshake, or null with nothing changed.
    /// </summary>
    public static Handshake? ConsumeInitiation(StaticIdentity local, IHandshakeLookup peers, ReadOnlySpan<byte> message, TimeSpan now)
    {
        if (!MessageInitiation.IsWellFormed(message))
            return null;
        Span<byte> scratch = stackalloc byte[HandshakeState.Size];
        Span<byte> payload = stackalloc byte[Tai64N.Size];
        try
        {
            var handshake = ReadInitiation(local, peers,
                message.Slice(MessageInitiation.NoiseOffset, MessageInitiation.NoiseLength), payload, scratch);
            if (handshake is null)
                return null;
            var timestamp = Tai64N.Read(payload);
            return AcceptInitiation(handshake, scratch, MessageInitiation.SenderIndex(message), timestamp, now)
                ? handshake
                : null;
        }
        finally
        {
            Sodium.MemZero(scratch);
        }
    }

    /// <summary>
    /// Inner layer, first half: reads Noise message A into <paramref name="scratch"/>
    /// (<see cref="HandshakeState.Size"/> bytes, which the caller zeroes) and the payload; returns the
    /// peer's handshake or null. Changes no handshake: <see cref="AcceptInitiation"/> commits.
    /// </summary>
    public static Handshake? ReadInitiation(StaticIdentity local, IHandshakeLookup peers,
        ReadOnlySpan<byte> noiseMessage, Span<byte> payload, Span<byte> scratch)
    {
        var state = new HandshakeState(scratch);
        state.Initialize(local.Construction, local.PublicKey);
        if (!state.ReadMessageAStatic(local.PrivateKey, noiseMessage, out var remoteStatic))
            return null;

        var handshake = peers.FindByStaticKey(remoteStatic);
        if (handshake is null)
            return null;

        Span<byte> staticStatic = stackalloc byte[32];
        try
        {
            lock (handshake.SyncRoot)
            {
                // The peer must belong to this identity (a key change races with the lookup).
                if (handshake.Local != local || !handshake.StaticStaticValidUnlocked)
                    return null;
                handshake.StaticStatic.CopyTo(staticStatic);
            }
            return state.ReadMessageAPayload(staticStatic, noiseMessage, payload) ? handshake : null;
        }
        finally
        {
            Sodium.MemZero(staticStatic);
        }
    }

    /// <summary>
    /// Inner layer, second half: stores a state read by <see cref="ReadInitiation"/> in the peer's
    /// handshake. With a <paramref name="timestamp"/>, refuses it unless strictly newer than the
    /// last accepted one (replay protection); with <paramref name="now"/>, refuses it within
    /// <see cref="MinInitiationInterval"/> of the last accepted one (flood protection). Both are
    /// recorded on success. The Noise test vectors pass neither.
    /// </summary>
    public static bool AcceptInitiation(Handshake handshake, ReadOnlySpan<byte> scratch, uint remoteIndex,
        Tai64N? timestamp, TimeSpan? now)
    {
        lock (handshake.SyncRoot)
        {
            if (timestamp is { } ts && !ts.After(handshake.LastTimestampUnlocked))
                return false;
            if (now is { } t && handshake.LastInitiationConsumedUnlocked is { } last && t - last < MinInitiationInterval)
                return false;
            if (timestamp is not null)
                handshake.LastTimestampUnlocked = timestamp.Value;
            if (now is not null)
                handshake.LastInitiationConsumedUnlocked = now;
            scratch.CopyTo(handshake.NoiseState);
            handshake.StageUnlocked = HandshakeStage.InitiationConsumed;
            handshake.RemoteIndexUnlocked = remoteIndex;
            handshake.LocalIndexUnlocked = 0;
            return true;
        }
    }

    // ---- response: <- e, ee, se, psk, {} ----

    /// <summary>
    /// Writes a 92-byte response (mac1 and mac2 left zero) to a consumed initiation, with our new
    /// index <paramref name="senderIndex"/>; moves to <see cref="HandshakeStage.ResponseCreated"/>.
    /// </summary>
    public static bool CreateResponse(Handshake handshake, uint senderIndex, IRandomGenerator random, Span<byte> message)
    {
        if (message.Length != MessageResponse.Size)
            return false;
        message.Clear();
        MessageHeader.WriteType(message, MessageType.Response);
        MessageHeader.WriteIndex(message, MessageResponse.SenderOffset, senderIndex);
        MessageHeader.WriteIndex(message, MessageResponse.ReceiverOffset, handshake.RemoteIndex);
        return CreateResponse(handshake, senderIndex, random, ReadOnlySpan<byte>.Empty,
            message.Slice(MessageResponse.NoiseOffset, MessageResponse.NoiseLength));
    }

    /// <summary>Inner layer: Noise message B with any payload into <paramref name="noiseMessage"/>.</summary>
    public static bool CreateResponse(Handshake handshake, uint senderIndex, IRandomGenerator random,
        ReadOnlySpan<byte> payload, Span<byte> noiseMessage)
    {
        Span<byte> scratch = stackalloc byte[HandshakeState.Size];
        try
        {
            lock (handshake.SyncRoot)
            {
                if (handshake.StageUnlocked != HandshakeStage.InitiationConsumed)
                    return false;
                handshake.NoiseState.CopyTo(scratch);
                var state = new HandshakeState(scratch);
                if (!state.WriteMessageB(handshake.RemoteStatic, handshake.PresharedKey, random, payload, noiseMessage))
                    return false;
                scratch.CopyTo(handshake.NoiseState);
                handshake.StageUnlocked = HandshakeStage.ResponseCreated;
                handshake.LocalIndexUnlocked = senderIndex;
                return true;
            }
        }
        finally
        {
            Sodium.MemZero(scratch);
        }
    }

    /// <summary>
    /// Consumes a 92-byte response (macs already checked) on the handshake the caller found by the
    /// message's receiver index; moves to <see cref="HandshakeStage.ResponseConsumed"/>. False,
    /// with nothing changed, if it is not the answer to our pending initiation.
    /// </summary>
    public static bool ConsumeResponse(Handshake handshake, ReadOnlySpan<byte> message)
    {
        if (!MessageResponse.IsWellFormed(message))
            return false;
        if (MessageResponse.ReceiverIndex(message) != handshake.LocalIndex)
            return false;
        return ConsumeResponse(handshake, MessageResponse.SenderIndex(message),
            message.Slice(MessageResponse.NoiseOffset, MessageResponse.NoiseLength), Span<byte>.Empty);
    }

    /// <summary>Inner layer: reads Noise message B and its payload (message length - 48 bytes).</summary>
    public static bool ConsumeResponse(Handshake handshake, uint remoteIndex, ReadOnlySpan<byte> noiseMessage, Span<byte> payload)
    {
        Span<byte> scratch = stackalloc byte[HandshakeState.Size];
        try
        {
            lock (handshake.SyncRoot)
            {
                if (handshake.StageUnlocked != HandshakeStage.InitiationCreated)
                    return false;
                handshake.NoiseState.CopyTo(scratch);
                var state = new HandshakeState(scratch);
                if (!state.ReadMessageB(handshake.Local.PrivateKey, handshake.PresharedKey, noiseMessage, payload))
                    return false;
                scratch.CopyTo(handshake.NoiseState);
                handshake.StageUnlocked = HandshakeStage.ResponseConsumed;
                handshake.RemoteIndexUnlocked = remoteIndex;
                return true;
            }
        }
        finally
        {
            Sodium.MemZero(scratch);
        }
    }

    // ---- transport keys ----

    /// <summary>
    /// Derives the transport keys of a completed handshake (Split: initiator sends with the first,
    /// the responder with the second), then zeroes the handshake (ck, h, ephemeral keys) and returns
    /// it to <see cref="HandshakeStage.Zeroed"/>. Null if the handshake is not complete.
    /// </summary>
    public static SessionKeys? BeginSession(Handshake handshake)
    {
        Span<byte> first = stackalloc byte[SymmetricKey.Size];
        Span<byte> second = stackalloc byte[SymmetricKey.Size];
        try
        {
            lock (handshake.SyncRoot)
            {
                bool isInitiator;
                if (handshake.StageUnlocked == HandshakeStage.ResponseConsumed)
                    isInitiator = true;
                else if (handshake.StageUnlocked == HandshakeStage.ResponseCreated)
                    isInitiator = false;
                else
                    return null;

                new HandshakeState(handshake.NoiseState).Split(first, second);
                var keys = isInitiator
                    ? new SessionKeys(first, second, true, handshake.LocalIndexUnlocked, handshake.RemoteIndexUnlocked)
                    : new SessionKeys(second, first, false, handshake.LocalIndexUnlocked, handshake.RemoteIndexUnlocked);
                handshake.ClearUnlocked();
                return keys;
            }
        }
        finally
        {
            Sodium.MemZero(first);
            Sodium.MemZero(second);
        }
    }
}
