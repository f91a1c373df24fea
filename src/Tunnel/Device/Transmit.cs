using System.Buffers;
using ForkNotify;
using Microsoft.Extensions.Logging;

namespace Tunnel.Device;

/// <summary>When the second stage of the send path (hot-path check, then the network) runs.</summary>
public enum TransmitMode
{
    /// <summary>Right after encryption, on the same thread: the daemon.</summary>
    Immediate,

    /// <summary>
    /// Only when the host calls <see cref="TunnelDevice.FlushTransmits"/>: a simulation can snapshot
    /// the device while a packet is encrypted but not yet sent, the window a real VM snapshot can
    /// hit between an encryption and its sendmsg().
    /// </summary>
    Deferred,
}

/// <summary>
/// A transport message between the two stages of the send path: encrypted under a keypair (stage 1)
/// and not yet handed to <see cref="IDeviceIo.SendDatagram"/> (stage 2). Stage 2 is where the fork
/// guard's hot path compares <see cref="Generation"/> with the pull counter, "just after
/// encrypting but before transmitting" (Jason Donenfeld on the vmgenid race).
/// </summary>
internal struct TransmitSlot
{
    /// <summary>Pooled; the message is its first <see cref="Length"/> bytes.</summary>
    public byte[] Buffer;
    public int Length;
    public Endpoint To;
    public Keypair Keypair;
    /// <summary>The keypair's <see cref="Keypair.CreatedGeneration"/> when it encrypted this message.</summary>
    public ulong Generation;
    /// <summary>The nonce (counter) the message was encrypted with.</summary>
    public ulong Counter;
    /// <summary>False for a keepalive (empty payload): only data arms the new-handshake timer.</summary>
    public bool IsData;

    public readonly ReadOnlySpan<byte> Message => Buffer.AsSpan(0, Length);
}

public sealed partial class TunnelDevice
{
    private readonly Lock _transmitLock = new();
    // Deferred mode only: stage-1 output waiting for FlushTransmits, in encryption order.
    private readonly List<TransmitSlot> _pendingTransmits = [];
    private IGenerationCounter? _hotPathCounter;
    private long _staleKeyDrops;
    private ulong _reseededGeneration;
    private volatile bool _reseedGate;

    /// <summary>
    /// The fork guard's pull counter (vmgenid CTRA page, virtio-rng copy-on-leak word, VMClock), or
    /// null for no check. Each keypair records its value when the handshake that derives it starts;
    /// stage 2 of the send path compares, and on a mismatch drops the packet, expires the current
    /// keypairs and starts a handshake. Set it before the first handshake: keypairs derived without
    /// a counter carry generation 0 and are treated as stale if the counter reads otherwise.
    /// </summary>
    public IGenerationCounter? HotPathCounter
    {
        get => Volatile.Read(ref _hotPathCounter);
        set => Volatile.Write(ref _hotPathCounter, value);
    }

    /// <summary>
    /// Tells the device that its randomness has been reseeded for pull-counter value
    /// <paramref name="generation"/> (the fork guard calls it at start and on each PostVmFork) and
    /// turns on the reseed gate: from then on, while <see cref="HotPathCounter"/> reads anything
    /// else, no handshake message is made. The hot path sees a fork as soon as the hypervisor moves
    /// the counter, before the guest kernel has reseeded its generator; a handshake made in that
    /// window would carry the same ephemeral key (and index) in every clone, and clones that all
    /// receive the responder's answer would all derive the same session. Deferred handshakes go out
    /// when the guard reports the reseed.
    /// </summary>
    public void MarkRandomReseeded(ulong generation)
    {
        Volatile.Write(ref _reseededGeneration, generation);
        _reseedGate = true;
    }

    /// <summary>True once <see cref="MarkRandomReseeded"/> has been called (or restored from a snapshot).</summary>
    public bool ReseedGateEnabled => _reseedGate;

    /// <summary>Turns the reseed gate off (the fork guard detaching).</summary>
    public void ClearReseedGate() => _reseedGate = false;

    /// <summary>
    /// False while the reseed gate is on and the pull counter has moved past the last reseed the
    /// device was told of: randomness drawn now may be the same in every clone.
    /// </summary>
    public bool RandomIsFresh =>
        !_reseedGate || HotPathCounter is not { } counter || counter.Read() == Volatile.Read(ref _reseededGeneration);

    /// <summary>Packets the hot-path check dropped because their keypair is from another VM generation.</summary>
    public long StaleKeyDrops => Interlocked.Read(ref _staleKeyDrops);

    /// <summary>How stage 2 is scheduled (from <see cref="DeviceOptions.TransmitMode"/>).</summary>
    public TransmitMode TransmitMode { get; }

    /// <summary>Encrypted messages waiting for <see cref="FlushTransmits"/> (always 0 in immediate mode).</summary>
    public int PendingTransmits { get { lock (_transmitLock) return _pendingTransmits.Count; } }

    /// <summary>
    /// Runs stage 2 for every pending message, oldest first: the hot-path check, then
    /// <see cref="IDeviceIo.SendDatagram"/>. Returns how many were handled (sent or dropped).
    /// Nothing to do in immediate mode.
    /// </summary>
    public int FlushTransmits()
    {
        TransmitSlot[] slots;
        lock (_transmitLock)
        {
            if (_pendingTransmits.Count == 0)
                return 0;
            slots = [.. _pendingTransmits];
            _pendingTransmits.Clear();
        }
        foreach (TransmitSlot slot in slots)
        {
            try
            {
                slot.Keypair.Peer.Transmit(slot);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(slot.Buffer);
            }
        }
        return slots.Length;
    }

    /// <summary>Stage 1 done in deferred mode: keep the slot (and its buffer) until the flush.</summary>
    internal void EnqueueTransmit(in TransmitSlot slot)
    {
        lock (_transmitLock)
            _pendingTransmits.Add(slot);
    }

    /// <summary>
    /// Drops pending messages whose keypair has been zeroed: they were encrypted under a session
    /// that no longer exists, and stage 2 would drop them anyway.
    /// </summary>
    private void DropZeroedTransmits()
    {
        lock (_transmitLock)
        {
            for (int i = _pendingTransmits.Count - 1; i >= 0; i--)
            {
                if (_pendingTransmits[i].Keypair.IsZeroed)
                {
                    ArrayPool<byte>.Shared.Return(_pendingTransmits[i].Buffer);
                    _pendingTransmits.RemoveAt(i);
                }
            }
        }
    }

    private void DropAllTransmits()
    {
        lock (_transmitLock)
        {
            foreach (TransmitSlot slot in _pendingTransmits)
                ArrayPool<byte>.Shared.Return(slot.Buffer);
            _pendingTransmits.Clear();
        }
    }

    internal void CountStaleKeyDrop() => Interlocked.Increment(ref _staleKeyDrops);
}

public sealed partial class Peer
{
    /// <summary>
    /// Stage 2 of the send path: drop the message if its keypair was zeroed meanwhile or (hot path)
    /// belongs to another VM generation; otherwise transmit it and run the send-side timers.
    /// The check costs one read of the counter and one compare.
    /// </summary>
    internal void Transmit(in TransmitSlot slot)
    {
        // Zeroed while we encrypted or waited (cleared sessions, fork guard): what we made is worthless.
        if (slot.Keypair.IsZeroed)
            return;
        IGenerationCounter? counter = _device.HotPathCounter;
        if (counter is not null && counter.Read() != slot.Generation)
        {
            OnStaleGeneration(slot.Keypair);
            return;
        }

        long now = _device.Clock.MonotonicNanos;
        _device.Io.SendDatagram(slot.Message, slot.To);
        AddTx(slot.Length);
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
        _device.CountStaleKeyDrop();
        lock (_lock)
        {
            // Only the first packet caught under this keypair expires the session and rekeys; the
            // rest (other send threads, deferred slots) are just dropped. A keypair that is no
            // longer current must not expire the one that replaced it.
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
