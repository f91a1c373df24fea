using Microsoft.Extensions.Logging;
using System.Buffers;
using System.Security.Cryptography;

namespace Tunnel.Device;

public sealed partial class TunnelDevice
{
    /// <summary>
    /// A datagram from the UDP socket. Dispatched by message type and exact length; anything that
    /// does not fit, fails authentication or is a replay is dropped silently and changes nothing.
    /// Thread-safe, no allocation in steady state.
    /// </summary>
    public void ReceiveDatagram(ReadOnlySpan<byte> datagram, in Endpoint from)
    {
        // ReadType reads the whole little-endian word, so nonzero reserved bytes match no type.
        switch (MessageHeader.ReadType(datagram))
        {
            case MessageType.Initiation when datagram.Length == MessageInitiation.Size:
                ReceiveInitiation(datagram, from);
                break;
            case MessageType.Response when datagram.Length == MessageResponse.Size:
                ReceiveResponse(datagram, from);
                break;
            case MessageType.CookieReply when datagram.Length == MessageCookieReply.Size:
                ReceiveCookieReply(datagram);
                break;
            case MessageType.Transport when datagram.Length >= MessageTransport.MinimumSize:
                ReceiveTransport(datagram, from);
                break;
        }
    }

    /// <summary>
    /// The cookie layer's gate for handshake messages: mac1 always; when under load, a valid mac2
    /// or else a cookie reply, and then the per-source rate limiter. True to go on.
    /// </summary>
    private bool PassesCookieChecks(ReadOnlySpan<byte> message, in Endpoint from, long now)
    {
        CookieChecker? checker = Volatile.Read(ref _cookieChecker);
        if (checker is null)
            return false;
        // mac1 first: it is cheap, and only messages that pass it count towards the load (an
        // attacker without our public key cannot make us look busy).
        if (!checker.CheckMac1(message))
            return false;
        bool underLoad = CountHandshakeAndCheckLoad(now);
        Span<byte> source = stackalloc byte[18];
        int sourceLength = from.WriteCookieSource(source);
        if (underLoad && !checker.CheckMac2(message, source[..sourceLength], ToTimeSpan(now)))
        {
            Span<byte> reply = stackalloc byte[MessageCookieReply.Size];
            if (checker.CreateReply(message, source[..sourceLength], ToTimeSpan(now), reply))
                Io.SendDatagram(reply, from);
            return false;
        }
        if (!underLoad)
            return true;
        Span<byte> address = stackalloc byte[16];
        from.WriteAddressBytes(address, out int addressLength);
        return _rateLimiter.Allow(address[..addressLength]);
    }

    private void ReceiveInitiation(ReadOnlySpan<byte> message, in Endpoint from)
    {
        long now = Clock.MonotonicNanos;
        StaticIdentity? identity = Volatile.Read(ref _identity);
        if (identity is null || !PassesCookieChecks(message, from, now))
            return;
        Handshake? handshake = NoiseProtocol.ConsumeInitiation(identity, this, message, ToTimeSpan(now));
        if (handshake is null || !_peers.TryGetValue(handshake.RemoteStatic, out Peer? peer))
            return;
        peer.OnInitiationConsumed(message.Length, from, now);
    }

    private void ReceiveResponse(ReadOnlySpan<byte> message, in Endpoint from)
    {
        long now = Clock.MonotonicNanos;
        if (!PassesCookieChecks(message, from, now))
            return;
        if (Indexes.Lookup(MessageResponse.ReceiverIndex(message)) is Peer peer)
            peer.ConsumeResponse(message, from, now);
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

    internal void ConsumeResponse(ReadOnlySpan<byte> message, in Endpoint from, long now)
    {
        Handshake? handshake = Handshake;
        if (handshake is null || !NoiseProtocol.ConsumeResponse(handshake, message))
            return;
        lock (_lock)
        {
            if (_removed || !DeriveKeypairLocked(now))
                return;
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
    }

    internal void ConsumeCookieReply(ReadOnlySpan<byte> message, long now) =>
        _cookieGenerator.ConsumeReply(message, TunnelDevice.ToTimeSpan(now));

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
