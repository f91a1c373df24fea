using Microsoft.Extensions.Logging;

namespace Tunnel.Device;

public sealed partial class Peer
{
    /// <summary>
    /// The last step of the send path (<see cref="OutboundTransport"/>'s step 3), where the fork
    /// guard's hot path compares the keypair's generation with the pull counter, "just after
    /// encrypting but before transmitting" (Jason Donenfeld on the vmgenid race): drop the message if its keypair was zeroed meanwhile or (hot
    /// path) belongs to another VM generation; otherwise transmit it and run the send-side timers.
    /// The check costs one read of the counter and one compare.
    /// </summary>
    internal void Transmit(in OutboundTransport slot, ReadOnlySpan<byte> message)
    {
        ulong generation = slot.Keypair!.CreatedGeneration;
        long now = _device.Clock.MonotonicNanos; // before the checks: nothing between the last one and the wire
        // Zeroed while we encrypted (cleared sessions, fork guard): what we made is worthless.
        if (slot.Keypair.IsZeroed)
            return;
        if (!_device.Fork.IsCurrent(generation))
        {
            OnStaleGeneration(slot.Keypair);
            return;
        }

        _device.Io.SendDatagram(message, slot.To, generation);
        AddTx(message.Length);
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
