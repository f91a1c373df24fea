using Microsoft.Extensions.Logging;
using System.Buffers;
using System.Security.Cryptography;

namespace Tunnel.Device;

public sealed partial class TunnelDevice
{
    /// <summary>
    /// A datagram from the UDP socket. Dispatched by message type and exact length; anything that
    /// does not fit, fails authentication or is a replay is dropped silently and changes nothing.
    /// Handshake messages run both halves here, one after the other (<see cref="AdmitHandshake"/>,
    /// then <see cref="ReceiveHandshake"/> or <see cref="SendCookieReply"/>): a host that wants the
    /// expensive half off its receive thread calls them itself, with a queue between them.
    /// Thread-safe, no allocation in steady state.
    /// </summary>
    public void ReceiveDatagram(ReadOnlySpan<byte> datagram, in Endpoint from)
    {
        if (IsHandshakeMessage(datagram))
        {
            switch (Admit(datagram, from, queued: false, backlogged: false))
            {
                case HandshakeAdmission.Consume:
                    ReceiveHandshake(datagram, from);
                    break;
                case HandshakeAdmission.CookieReply:
                    SendCookieReply(datagram, from);
                    break;
            }
        }
        else if (MessageHeader.ReadType(datagram) == MessageType.Transport && datagram.Length >= MessageTransport.MinimumSize)
        {
            ReceiveTransport(datagram, from);
        }
    }

    /// <summary>
    /// True for an initiation, a response or a cookie reply at its exact size (ReadType reads the
    /// whole little-endian word, so nonzero reserved bytes match no type). At most
    /// <see cref="MessageInitiation.Size"/> bytes, the largest of the three.
    /// </summary>
    public static bool IsHandshakeMessage(ReadOnlySpan<byte> datagram) => MessageHeader.ReadType(datagram) switch
    {
        MessageType.Initiation => datagram.Length == MessageInitiation.Size,
        MessageType.Response => datagram.Length == MessageResponse.Size,
        MessageType.CookieReply => datagram.Length == MessageCookieReply.Size,
        _ => false,
    };

    /// <summary>
    /// The cookie layer's checks on a handshake message, before any Diffie-Hellman or reply (done
    /// here in front of the host's queue; the kernel and wireguard-go do them behind theirs):
    /// mac1; when under load the per-source rate limiter, then mac2 (a cookie reply without it). A cookie reply
    /// carries no macs and is always consumed (wireguard-go queues it too). Cheap: two or three
    /// keyed BLAKE2s, no allocation, nothing sent.
    /// </summary>
    /// <param name="backlogged">The host's handshake queue holds at least 1/8 of its capacity: the
    /// device is under load now and for the next second (wireguard-go IsUnderLoad). This is the
    /// whole load test of a host with a queue: a rate of messages its worker keeps up with (a hub
    /// consuming the responses of its own rekey, thousands a second) is not load.</param>
    public HandshakeAdmission AdmitHandshake(ReadOnlySpan<byte> message, in Endpoint from, bool backlogged) =>
        Admit(message, from, queued: true, backlogged);

    /// <param name="queued">A host queue stands between this and the expensive half: its depth
    /// (<paramref name="backlogged"/>) decides the load. Without one, the rate of costly
    /// messages stands in for it (<see cref="CountCostlyHandshake"/>).</param>
    private HandshakeAdmission Admit(ReadOnlySpan<byte> message, in Endpoint from, bool queued, bool backlogged)
    {
        if (!IsHandshakeMessage(message))
            return HandshakeAdmission.Drop;
        MessageType type = MessageHeader.ReadType(message);
        if (type == MessageType.CookieReply)
            return HandshakeAdmission.Consume;
        CookieChecker? checker = Volatile.Read(ref _cookieChecker);
        if (checker is null)
            return HandshakeAdmission.Drop;
        // mac1 first: it is cheap, and only messages that pass it count towards the load (an
        // attacker without our public key cannot make us look busy).
        if (!checker.CheckMac1(message))
            return HandshakeAdmission.Drop;
        long now = Clock.MonotonicNanos;
        bool overloaded = queued ? backlogged : type == MessageType.Initiation && CountCostlyHandshake(now);
        if (!CheckLoad(now, overloaded))
            return HandshakeAdmission.Consume;
        // Under load every message is charged to its source, also one that only earns a cookie
        // reply (the kernel and wireguard-go answer those without limit): a flooding host then
        // gets 20 replies a second and the worker's time goes to the other sources' replies and
        // handshakes, so a legitimate new peer gets its cookie at its first try.
        Span<byte> address = stackalloc byte[16];
        from.WriteAddressBytes(address, out int addressLength);
        if (!_rateLimiter.Allow(address[..addressLength]))
            return HandshakeAdmission.Drop;
        Span<byte> source = stackalloc byte[18];
        int sourceLength = from.WriteCookieSource(source);
        return checker.CheckMac2(message, source[..sourceLength], ToTimeSpan(now))
            ? HandshakeAdmission.Consume
            : HandshakeAdmission.CookieReply;
    }

    /// <summary>
    /// The expensive half of a handshake message that <see cref="AdmitHandshake"/> let through:
    /// consumes an initiation (and answers it), a response or a cookie reply. Any thread, while
    /// other threads carry data: every change it makes is under the peer's lock.
    /// </summary>
    public void ReceiveHandshake(ReadOnlySpan<byte> message, in Endpoint from)
    {
        switch (MessageHeader.ReadType(message))
        {
            case MessageType.Initiation when message.Length == MessageInitiation.Size:
                ReceiveInitiation(message, from);
                break;
            case MessageType.Response when message.Length == MessageResponse.Size:
                ReceiveResponse(message, from);
                break;
            case MessageType.CookieReply when message.Length == MessageCookieReply.Size:
                ReceiveCookieReply(message);
                break;
        }
    }

    /// <summary>
    /// Answers a handshake message that <see cref="AdmitHandshake"/> found without a valid mac2
    /// under load: a cookie reply to its sender, which proves its address by using the cookie in
    /// its next message. Changes nothing but, once per 120 s, the cookie secret.
    /// </summary>
    public void SendCookieReply(ReadOnlySpan<byte> message, in Endpoint from)
    {
        CookieChecker? checker = Volatile.Read(ref _cookieChecker);
        if (checker is null)
            return;
        Span<byte> source = stackalloc byte[18];
        int sourceLength = from.WriteCookieSource(source);
        Span<byte> reply = stackalloc byte[MessageCookieReply.Size];
        if (checker.CreateReply(message, source[..sourceLength], ToTimeSpan(Clock.MonotonicNanos), reply))
            Io.SendDatagram(reply, from);
    }

    private void ReceiveInitiation(ReadOnlySpan<byte> message, in Endpoint from)
    {
        long now = Clock.MonotonicNanos;
        StaticIdentity? identity = Volatile.Read(ref _identity);
        if (identity is null)
            return;
        Handshake? handshake = NoiseProtocol.ConsumeInitiation(identity, this, message, ToTimeSpan(now));
        if (handshake is null || !_peers.TryGetValue(handshake.RemoteStatic, out Peer? peer))
            return;
        peer.OnInitiationConsumed(message.Length, from, now);
    }

    private void ReceiveResponse(ReadOnlySpan<byte> message, in Endpoint from)
    {
        long now = Clock.MonotonicNanos;
        // A response that names a pending handshake of ours and fails has cost ee and se: it
        // counts towards the load as an initiation does (see CountCostlyHandshake).
        if (Indexes.Lookup(MessageResponse.ReceiverIndex(message)) is Peer peer
            && !peer.ConsumeResponse(message, from, now)
            && CountCostlyHandshake(now))
            CheckLoad(now, overloaded: true);
    }

    private void ReceiveCookieReply(ReadOnlySpan<byte> message)
    {
        // The receiver index is the sender index of our handshake message. For an initiation it
        // names the peer while the handshake is pending; for a response it already names the
        // keypair the response derived. Both lead to the peer (kernel and wireguard-go alike).
        Peer? peer = Indexes.Lookup(MessageCookieReply.ReceiverIndex(message)) switch
        {
            Peer pending => pending,
            Keypair keypair => keypair.Peer,
            _ => null,
        };
        peer?.ConsumeCookieReply(message, Clock.MonotonicNanos);
    }

    private void ReceiveTransport(ReadOnlySpan<byte> message, in Endpoint from)
    {
        using var section = Rcu.ReadLock(); // the keypair is not zeroed while we open under it
        if (!PrepareReceive(message, out InboundTransport job))
            return;
        int contentLength = message.Length - MessageTransport.MinimumSize;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(contentLength, 1));
        try
        {
            Span<byte> plaintext = buffer.AsSpan(0, contentLength);
            if (!Open(job, plaintext, message))
                return;
            job.Opened = true;
            CommitOpened(job, plaintext, from);
        }
        finally
        {
            // The shared pool hands this buffer to any code in the process next: no plaintext in it
            // (also on failure: a decryption that fails authentication may have written some).
            CryptographicOperations.ZeroMemory(buffer.AsSpan(0, contentLength));
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Step 1 of an <see cref="InboundTransport"/>, on the receiving thread: a well-formed
    /// transport message whose receiver index names a live keypair. False: not one (a handshake
    /// message goes to <see cref="ReceiveDatagram"/>), or nothing can open it (dropped).
    /// </summary>
    public bool PrepareReceive(ReadOnlySpan<byte> message, out InboundTransport job)
    {
        job = default;
        if (message.Length < MessageTransport.MinimumSize || MessageHeader.ReadType(message) != MessageType.Transport)
            return false;
        using var section = Rcu.ReadLock();
        if (Indexes.Lookup(MessageTransport.ReceiverIndex(message)) is not Keypair keypair
            || keypair.IsExpired(Clock.MonotonicNanos))
            return false;
        job.Keypair = keypair;
        job.Counter = MessageTransport.Counter(message);
        job.MessageLength = message.Length;
        return true;
    }

    /// <summary>
    /// Step 2, on any thread: authenticates and decrypts the message in place; the plaintext is
    /// then at <see cref="MessageTransport.ContentOffset"/>, <see cref="InboundTransport.PlaintextLength"/>
    /// bytes. Nothing is accepted yet: the replay window moves at step 3.
    /// </summary>
    public void OpenTransport(ref InboundTransport job, Span<byte> message)
    {
        using var section = Rcu.ReadLock();
        if (job.Keypair is not { IsZeroed: false } || message.Length != job.MessageLength)
            return;
        job.Opened = Open(job, message[MessageTransport.ContentOffset..^MessageTransport.TagSize], message);
    }

    /// <summary>
    /// Step 3, in the order the messages arrived: the replay window, then the peer's receive
    /// path (roaming, timers, key rotation, inbound cryptokey routing, the TUN device).
    /// </summary>
    public void CommitReceive(in InboundTransport job, ReadOnlySpan<byte> message, in Endpoint from)
    {
        if (!job.Opened)
            return;
        using var section = Rcu.ReadLock();
        CommitOpened(job, message.Slice(MessageTransport.ContentOffset, job.PlaintextLength), from);
    }

    private static bool Open(in InboundTransport job, Span<byte> plaintext, ReadOnlySpan<byte> message)
    {
        Span<byte> nonce = stackalloc byte[12];
        Peer.WriteNonce(nonce, job.Counter);
        return Crypto.TransportAead.Open(plaintext, message[MessageTransport.ContentOffset..], nonce, job.Keypair!.ReceiveKey);
    }

    /// <summary>An authenticated message, in a read-side section: replay window, then the peer.</summary>
    private void CommitOpened(in InboundTransport job, ReadOnlySpan<byte> plaintext, in Endpoint from)
    {
        Keypair keypair = job.Keypair!;
        long now = Clock.MonotonicNanos;
        // Retired or expired since step 1: its window may be reset, so it must not accept.
        if (keypair.IsExpired(now))
            return;
        // Only now, with the packet authenticated, may it move the replay window.
        if (!keypair.ReplayFilter.ValidateCounter(job.Counter, Constants.RejectAfterMessages))
            return;
        keypair.Peer.OnTransportAuthenticated(keypair, plaintext, job.MessageLength, from, now);
    }
}

public sealed partial class Peer
{
    internal void OnInitiationConsumed(int messageLength, in Endpoint from, long now)
    {
        UpdateEndpoint(from);
        AddRx(messageLength);
        TimersAnyAuthenticatedPacketTraversal(now);
        TimersAnyAuthenticatedPacketReceived();
        SendHandshakeResponse();
    }

    /// <summary>False when the response did not complete our handshake.</summary>
    internal bool ConsumeResponse(ReadOnlySpan<byte> message, in Endpoint from, long now)
    {
        Handshake? handshake = Handshake;
        if (handshake is null || !NoiseProtocol.ConsumeResponse(handshake, message))
            return false;
        lock (_lock)
        {
            if (_removed || !DeriveKeypairLocked(now))
                return false;
        }
        UpdateEndpoint(from);
        AddRx(message.Length);
        TimersAnyAuthenticatedPacketTraversal(now);
        TimersAnyAuthenticatedPacketReceived();
        TimersSessionDerived(now);
        TimersHandshakeComplete();
        if (_device.Logger.IsEnabled(LogLevel.Debug))
            _device.Logger.LogDebug("{Peer}: handshake complete (initiator)", this);
        // The staged packets, or a keepalive, confirm the new session to the responder.
        SendKeepaliveOrStaged();
        return true;
    }

    internal void ConsumeCookieReply(ReadOnlySpan<byte> message, long now) =>
        // No generator: we never sent a handshake message, so no reply can be for one of ours.
        Volatile.Read(ref _cookieGenerator)?.ConsumeReply(message, TunnelDevice.ToTimeSpan(now));

    internal void OnTransportAuthenticated(Keypair keypair, ReadOnlySpan<byte> plaintext, int messageLength,
        in Endpoint from, long now)
    {
        bool confirmed = false;
        // Only the first packet under a new keypair rotates; the rest skip the lock.
        if (ReferenceEquals(Keypairs.Next, keypair))
        {
            lock (_lock)
            {
                if (_removed)
                    return;
                confirmed = Keypairs.ReceivedWith(keypair, out Keypair? retired);
                RetireLocked(retired);
            }
        }
        if (confirmed)
        {
            TimersHandshakeComplete();
            if (_device.Logger.IsEnabled(LogLevel.Debug))
                _device.Logger.LogDebug("{Peer}: session confirmed by the initiator", this);
        }

        UpdateEndpoint(from);
        AddRx(messageLength);
        TimersAnyAuthenticatedPacketTraversal(now);
        TimersAnyAuthenticatedPacketReceived();
        KeepKeyFreshOnReceive(now);
        if (confirmed)
            SendStaged();

        if (plaintext.Length == 0)
            return; // a keepalive: it did its job by arriving

        // Cryptokey routing, inbound: the inner source must be one of this peer's allowed IPs.
        if (!IpHeader.TryGetSource(plaintext, out ReadOnlySpan<byte> source, out int length)
            || !ReferenceEquals(_device.AllowedIps.Lookup(source), this))
            return;
        _device.Io.DeliverPacket(plaintext[..length], this);
        TimersDataReceived(now);
    }

    /// <summary>
    /// The initiator's session is close to REJECT_AFTER_TIME and we are receiving: rekey once now,
    /// so a new session is ready before the old one dies (kernel keep_key_fresh on receive).
    /// </summary>
    private void KeepKeyFreshOnReceive(long now)
    {
        Keypair? current = Keypairs.Current;
        if (current is null || !current.IsInitiator || _sentLastMinuteHandshake)
            return;
        if (now - current.CreatedNanos >= Constants.RejectAfterTimeNanos - Constants.KeepaliveTimeoutNanos - Constants.RekeyTimeoutNanos)
        {
            _sentLastMinuteHandshake = true;
            SendHandshakeInitiation(isRetry: false);
        }
    }
}

/// <summary>What <see cref="TunnelDevice.AdmitHandshake"/> found a handshake message worth.</summary>
public enum HandshakeAdmission
{
    /// <summary>Not a handshake message, bad mac1, no key, or over its source's rate: nothing to do.</summary>
    Drop,

    /// <summary>Passed the checks: <see cref="TunnelDevice.ReceiveHandshake"/> (the Diffie-Hellman part).</summary>
    Consume,

    /// <summary>Under load without a valid mac2: <see cref="TunnelDevice.SendCookieReply"/>.</summary>
    CookieReply,
}
