using System.Buffers;
using System.Buffers.Binary;
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
    /// sending and the caller stages the packet.
    /// </summary>
    private bool EncryptAndSend(Keypair keypair, ReadOnlySpan<byte> packet, long now)
    {
        if (!keypair.TryTakeNonce(out ulong counter))
        {
            keypair.DisallowSending();
            return false;
        }
        if (!TryGetEndpoint(out Endpoint to))
            return true; // nowhere to send: the packet is lost, as the kernel loses it

        int padded = MessageTransport.PaddedLength(packet.Length, _device.Mtu);
        int size = MessageTransport.MessageSize(padded);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(size);
        try
        {
            Span<byte> message = buffer.AsSpan(0, size);
            MessageTransport.WriteHeader(message, keypair.RemoteIndex, counter);
            Span<byte> content = message.Slice(MessageTransport.ContentOffset, padded);
            packet.CopyTo(content);
            content[packet.Length..].Clear();
            Span<byte> nonce = stackalloc byte[12];
            WriteNonce(nonce, counter);
            TransportAead.Seal(message[MessageTransport.ContentOffset..], content, nonce, keypair.SendKey);
            Transmit(new TransmitSlot
            {
                Message = message,
                To = to,
                Keypair = keypair,
                Generation = keypair.CreatedGeneration,
                Counter = counter,
                IsData = packet.Length != 0,
            });
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return true;
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
        _cookieGenerator.AddMacs(message, TunnelDevice.ToTimeSpan(now));
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
