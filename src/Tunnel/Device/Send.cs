using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using Tunnel.Crypto;

namespace Tunnel.Device;

public sealed partial class TunnelDevice
{
    /// <summary>
    /// A packet from the TUN device: routed by its destination address (cryptokey routing: the
    /// peer whose allowed IPs hold it), then encrypted to that peer, or staged while a handshake
    /// runs. Not an IPv4/IPv6 packet, or no peer for it: dropped. Thread-safe, no allocation in
    /// steady state.
    /// </summary>
    public void SendPacket(ReadOnlySpan<byte> ipPacket)
    {
        if (!IpHeader.TryGetDestination(ipPacket, out ReadOnlySpan<byte> destination))
            return;
        Peer? peer = AllowedIps.Lookup(destination);
        peer?.SendData(ipPacket);
    }

    /// <summary>
    /// Step 1 of an <see cref="OutboundTransport"/>, on the thread that reads the packets, in their
    /// order: <paramref name="message"/> holds an inner packet of <paramref name="packetLength"/>
    /// bytes at <see cref="MessageTransport.ContentOffset"/> and has room for its padding and tag
    /// (<see cref="MaxMessageSize"/>). Routes it, takes the current keypair and its nonce, writes
    /// the header and padding around it. False when there is nothing to seal: no route, no
    /// endpoint, or no session (the packet is then staged, copied, and a handshake started).
    /// </summary>
    public bool PrepareTransport(Span<byte> message, int packetLength, out OutboundTransport job)
    {
        job = default;
        Span<byte> packet = message.Slice(MessageTransport.ContentOffset, packetLength);
        if (!IpHeader.TryGetDestination(packet, out ReadOnlySpan<byte> destination)
            || AllowedIps.Lookup(destination) is not Peer peer)
            return false;
        return peer.PrepareData(message, packetLength, out job);
    }

    /// <summary>The room <see cref="PrepareTransport"/> needs for an inner packet of <paramref name="packetLength"/> bytes.</summary>
    public int MaxMessageSize(int packetLength) =>
        MessageTransport.MessageSize(MessageTransport.PaddedLength(packetLength, Mtu));

    /// <summary>
    /// Step 2, on any thread: seals the prepared message in place, unless its keypair was retired
    /// since step 1 (its keys may be zeroed: the message is then dropped at step 3).
    /// </summary>
    public void SealTransport(ref OutboundTransport job, Span<byte> message)
    {
        // The preparing thread has left its section: this one must hold the keypair now, and a
        // keypair retired before it entered may already be zeroed.
        using var section = Rcu.ReadLock();
        if (job.Keypair is not { IsZeroed: false })
            return;
        Peer.Seal(ref job, message);
    }

    /// <summary>
    /// Step 3, in the order of step 1: the hot-path check (the last thing before the wire), then
    /// the network and the send-side timers. A message sealed under a keypair of another VM
    /// generation (a fork between steps 1 and 3) is dropped and counted as a stale-key drop.
    /// </summary>
    public void CommitTransport(in OutboundTransport job, ReadOnlySpan<byte> message)
    {
        if (job.Sealed)
            job.Peer!.Transmit(job, message[..job.MessageLength]);
    }
}

public sealed partial class Peer
{
    /// <summary>Sends one inner packet, or stages it and starts a handshake when no session can send.</summary>
    internal void SendData(ReadOnlySpan<byte> packet)
    {
        using var section = _device.Rcu.ReadLock(); // the keypair is not zeroed while we seal under it
        long now = _device.Clock.MonotonicNanos;
        Keypair? keypair = Keypairs.Current;
        if (!CanSendWith(keypair, now) || !EncryptAndSend(keypair!, packet, now))
        {
            _staged.Enqueue(packet);
            SendHandshakeInitiation(isRetry: false);
        }
    }

    /// <summary>
    /// <see cref="TunnelDevice.PrepareTransport"/> for this peer: as <see cref="SendData"/>, but
    /// the packet is already in place and is sealed and sent by the caller.
    /// </summary>
    internal bool PrepareData(Span<byte> message, int packetLength, out OutboundTransport job)
    {
        using var section = _device.Rcu.ReadLock(); // the keypair is not zeroed while we read it
        long now = _device.Clock.MonotonicNanos;
        Keypair? keypair = Keypairs.Current;
        if (CanSendWith(keypair, now) && TryPrepareTransport(keypair!, message, packetLength, out job))
            return job.HasEndpoint;
        job = default;
        _staged.Enqueue(message.Slice(MessageTransport.ContentOffset, packetLength));
        SendHandshakeInitiation(isRetry: false);
        return false;
    }

    /// <summary>The staged packets if there are any (they prove liveness as well), else an empty one.</summary>
    private void SendKeepaliveOrStaged()
    {
        if (_staged.Count > 0)
        {
            SendStaged();
            return;
        }
        using var section = _device.Rcu.ReadLock();
        long now = _device.Clock.MonotonicNanos;
        Keypair? keypair = Keypairs.Current;
        if (!CanSendWith(keypair, now) || !EncryptAndSend(keypair!, ReadOnlySpan<byte>.Empty, now))
            SendHandshakeInitiation(isRetry: false);
    }

    /// <summary>Flushes the staged packets in order while the current keypair can send.</summary>
    private void SendStaged()
    {
        using var section = _device.Rcu.ReadLock();
        while (true)
        {
            long now = _device.Clock.MonotonicNanos;
            Keypair? keypair = Keypairs.Current;
            if (!CanSendWith(keypair, now))
            {
                if (_staged.Count > 0)
                    SendHandshakeInitiation(isRetry: false);
                return;
            }
            if (!_staged.TryDequeue(out byte[] buffer, out int length))
                return;
            if (EncryptAndSend(keypair!, buffer.AsSpan(0, length), now))
                StagedPackets.Release(buffer, length);
            else
                _staged.PutBack(buffer, length); // keypair used up meanwhile: first for the next one
        }
    }

    private static bool CanSendWith(Keypair? keypair, long now) =>
        keypair is not null && keypair.CanSend && !keypair.IsExpired(now);

    /// <summary>
    /// Encrypts <paramref name="packet"/> (empty = keepalive) under <paramref name="keypair"/>,
    /// padded to 16, and hands it to <see cref="Transmit"/> (hot-path check, then the network).
    /// False if the keypair's counters are used up (REJECT_AFTER_MESSAGES): it is then barred from
    /// sending and the caller stages the packet. The three steps of <see cref="OutboundTransport"/>
    /// on this thread, through a pooled buffer (zeroed before it goes back: it held plaintext).
    /// </summary>
    private bool EncryptAndSend(Keypair keypair, ReadOnlySpan<byte> packet, long now)
    {
        int size = MessageTransport.MessageSize(MessageTransport.PaddedLength(packet.Length, _device.Mtu));
        byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
        OutboundTransport job = default;
        try
        {
            Span<byte> message = buffer.AsSpan(0, size);
            packet.CopyTo(message[MessageTransport.ContentOffset..]);
            if (!TryPrepareTransport(keypair, message, packet.Length, out job))
                return false;
            if (!job.HasEndpoint)
                return true; // nowhere to send: the packet is lost, as the kernel loses it
            Seal(ref job, message);
            Transmit(job, message[..job.MessageLength]);
        }
        finally
        {
            // Sealed in place, it holds only ciphertext; else the plaintext must not reach the pool.
            if (!job.Sealed)
                CryptographicOperations.ZeroMemory(buffer.AsSpan(0, size));
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return true;
    }

    /// <summary>
    /// Step 1 of <see cref="OutboundTransport"/>: takes the nonce, writes the header and the
    /// padding around the <paramref name="packetLength"/> bytes already at the content offset of
    /// <paramref name="message"/>, and notes where it goes. False if the counters are used up
    /// (the keypair is then barred from sending).
    /// </summary>
    private bool TryPrepareTransport(Keypair keypair, Span<byte> message, int packetLength, out OutboundTransport job)
    {
        job = default;
        if (!keypair.TryTakeNonce(out ulong counter))
        {
            keypair.DisallowSending();
            return false;
        }
        int padded = MessageTransport.PaddedLength(packetLength, _device.Mtu);
        job.Peer = this;
        job.Keypair = keypair;
        job.Counter = counter;
        job.PlaintextLength = padded;
        job.IsData = packetLength != 0;
        job.HasEndpoint = TryGetEndpoint(out job.To);
        MessageTransport.WriteHeader(message, keypair.RemoteIndex, counter);
        message.Slice(MessageTransport.ContentOffset + packetLength, padded - packetLength).Clear();
        return true;
    }

    /// <summary>Step 2: seals the prepared content in place (the caller is in a read-side section).</summary>
    internal static void Seal(ref OutboundTransport job, Span<byte> message)
    {
        Span<byte> nonce = stackalloc byte[12];
        WriteNonce(nonce, job.Counter);
        Span<byte> sealedPart = message.Slice(MessageTransport.ContentOffset, job.PlaintextLength + MessageTransport.TagSize);
        TransportAead.Seal(sealedPart, sealedPart[..job.PlaintextLength], nonce, job.Keypair!.SendKey);
        job.Sealed = true;
    }

    /// <summary>The AEAD nonce: 32 zero bits then the 64-bit counter, little-endian.</summary>
    internal static void WriteNonce(Span<byte> nonce, ulong counter)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(nonce, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], counter);
    }

    /// <summary>
    /// Creates and sends a handshake initiation. Not more often than every REKEY_TIMEOUT (the
    /// whitepaper's rule, wireguard-go's lastSentHandshake check); a retry keeps the attempt count,
    /// a fresh start resets it.
    /// </summary>
    internal void SendHandshakeInitiation(bool isRetry)
    {
        Span<byte> message = stackalloc byte[MessageInitiation.Size];
        long now = _device.Clock.MonotonicNanos;
        HandshakeTail tail;
        lock (_lock)
        {
            if (_removed || _handshake is null || !_handshake.CanHandshake)
                return;
            if (!isRetry)
                Volatile.Write(ref _handshakeAttempts, 0);
            if (_hasSentHandshake && now - _lastSentHandshakeNanos < Constants.RekeyTimeoutNanos)
                return;
            if (now < _initiationNotBeforeNanos)
            {
                // The responder would still refuse it: send it when it will take it.
                TimersHandshakeRetryAt(_initiationNotBeforeNanos);
                return;
            }
            // One read of the pull counter: the gate decision and the generation recorded.
            if (!_device.Fork.TryBeginHandshake(out ulong generation))
            {
                // Forked and not yet reseeded with an input unique to this VM: the fork guard sends
                // it after the reseed. Until then the retransmit timer retries it, and gives up
                // after REKEY_ATTEMPT_TIME as for an initiation that is never answered.
                _handshakeDeferred = true;
                if (Volatile.Read(ref _retransmitHandshakeDeadline) == Never)
                    TimersHandshakeInitiated(now);
                return;
            }
            _handshakeDeferred = false;
            _hasSentHandshake = true;
            _lastSentHandshakeNanos = now;
            _initiationNotBeforeNanos = 0;

            FreeHandshakeIndexLocked();
            uint index = _device.Indexes.Insert(this);
            // The responder refuses a timestamp not newer than the last it accepted, and a VM
            // restored from a snapshot may wake with a stale wall clock: never go backwards.
            Tai64N timestamp = Tai64N.FromDateTime(_device.Clock.UtcNow);
            if (!timestamp.After(_lastSentTimestamp))
                timestamp = _lastSentTimestamp.NextWhitened();
            generation = _device.Fork.HandshakeGeneration(generation);
            if (!NoiseProtocol.CreateInitiation(_handshake, index, timestamp, _device.Random, message))
            {
                _device.Indexes.Remove(index, this);
                return;
            }
            _handshakeIndex = index;
            _lastSentTimestamp = timestamp;
            _handshakeGeneration = generation;
            tail = FinishHandshakeMessageLocked(message, now, generation);
        }

        TransmitHandshakeMessage(message, tail, now);
        TimersHandshakeInitiated(now);
    }

    /// <summary>Answers the initiation just consumed into our handshake and derives the (next) keypair.</summary>
    private void SendHandshakeResponse()
    {
        Span<byte> message = stackalloc byte[MessageResponse.Size];
        long now = _device.Clock.MonotonicNanos;
        HandshakeTail tail;
        lock (_lock)
        {
            if (_removed || _handshake is null)
                return;
            // Forked and not yet reseeded: our ephemeral key would be every clone's. The initiator
            // retries after REKEY_TIMEOUT.
            if (!_device.Fork.TryBeginHandshake(out ulong generation))
                return;
            FreeHandshakeIndexLocked();
            uint index = _device.Indexes.Insert(this);
            _handshakeGeneration = _device.Fork.HandshakeGeneration(generation);
            if (!NoiseProtocol.CreateResponse(_handshake, index, _device.Random, message))
            {
                _device.Indexes.Remove(index, this);
                return;
            }
            _handshakeIndex = index;
            if (!DeriveKeypairLocked(now))
                return;
            tail = FinishHandshakeMessageLocked(message, now, _handshakeGeneration);
        }

        TimersSessionDerived(now);
        TransmitHandshakeMessage(message, tail, now);
    }

    /// <summary>Where a finished handshake message goes, and the generation it was made in.</summary>
    private readonly record struct HandshakeTail(Endpoint To, bool HasEndpoint, ulong Generation);

    /// <summary>Under the peer lock: mac1/mac2 on a made handshake message, and where it goes.</summary>
    private HandshakeTail FinishHandshakeMessageLocked(Span<byte> message, long now, ulong generation)
    {
        GetOrMakeCookieGenerator().AddMacs(message, TunnelDevice.ToTimeSpan(now));
        return new HandshakeTail(_endpoint, _hasEndpoint, generation);
    }

    /// <summary>
    /// Outside the lock: the hot-path check (a snapshot between the gate and here would make every
    /// clone send the same ephemeral), the network, and the timers every authenticated send runs.
    /// </summary>
    private void TransmitHandshakeMessage(ReadOnlySpan<byte> message, in HandshakeTail tail, long now)
    {
        if (!_device.Fork.IsCurrent(tail.Generation))
            return;
        if (tail.HasEndpoint)
        {
            _device.Io.SendDatagram(message, tail.To, tail.Generation);
            AddTx(message.Length);
        }
        TimersAnyAuthenticatedPacketTraversal(now);
        TimersAnyAuthenticatedPacketSent();
    }
}
