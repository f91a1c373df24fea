using Microsoft.Extensions.Logging;

namespace Tunnel.Device;

/// <summary>
/// A transport message between encryption and the network. <see cref="Peer.Transmit"/> is where
/// the fork guard's hot path compares <see cref="Generation"/> with the pull counter, "just after
/// encrypting but before transmitting" (Jason Donenfeld on the vmgenid race).
/// </summary>
internal readonly ref struct TransmitSlot
{
    /// <summary>The sealed message.</summary>
    public ReadOnlySpan<byte> Message { get; init; }
    public Endpoint To { get; init; }
    public Keypair Keypair { get; init; }
    /// <summary>The keypair's <see cref="Keypair.CreatedGeneration"/>.</summary>
    public ulong Generation { get; init; }
    /// <summary>The nonce (counter) the message was encrypted with.</summary>
    public ulong Counter { get; init; }
    /// <summary>False for a keepalive (empty payload): only data arms the new-handshake timer.</summary>
    public bool IsData { get; init; }
}

public sealed partial class Peer
{
    /// <summary>
    /// The last step of the send path: drop the message if its keypair was zeroed meanwhile or (hot
    /// path) belongs to another VM generation; otherwise transmit it and run the send-side timers.
    /// The check costs one read of the counter and one compare.
    /// </summary>
    internal void Transmit(in TransmitSlot slot)
    {
        // Zeroed while we encrypted (cleared sessions, fork guard): what we made is worthless.
        if (slot.Keypair.IsZeroed)
            return;
        if (!_device.Fork.IsCurrent(slot.Generation))
        {
            OnStaleGeneration(slot.Keypair);
            return;
        }

        long now = _device.Clock.MonotonicNanos;
        _device.Io.SendDatagram(slot.Message, slot.To, slot.Generation);
        AddTx(slot.Message.Length);
        TimersAnyAuthenticatedPacketTraversal(now);
        TimersAnyAuthenticatedPacketSent();
        if (slot.IsData)
            TimersDataSent(now);

        // Keep the key fresh (whitepaper 6.2): the initiator rekeys after REKEY_AFTER_TIME, either
        // side after REKEY_AFTER_MESSAGES.
        if (slot.Counter >= Constants.RekeyAfterMessages
            || (slot.Keypair.IsInitiator && now - slot.Keypair.CreatedNanos >= Constants.RekeyAfterTimeNanos))
            SendHandshakeInitiation(isRetry: false);
    }

    /// <summary>
    /// The VM was cloned or restored since this peer's keys were derived: another copy of this
    /// guest may be sending under the same (key, nonce). Stop sending under them and rekey now.
    /// </summary>
    private void OnStaleGeneration(Keypair keypair)
    {
        _device.Fork.CountStaleKeyDrop();
        lock (_lock)
        {
            // Only the first packet caught under this keypair expires the session and rekeys; the
            // rest (other send threads) are just dropped. A keypair that is no longer current must
            // not expire the one that replaced it.
            if (!keypair.CanSend || !ReferenceEquals(Keypairs.Current, keypair))
            {
                keypair.DisallowSending();
                return;
            }
            ExpireCurrentKeypairs();
        }
        if (_device.Logger.IsEnabled(LogLevel.Debug))
            _device.Logger.LogDebug("{Peer}: keypair from another VM generation, dropped a packet and rekeying", this);
        SendHandshakeInitiation(isRetry: false);
    }
}
