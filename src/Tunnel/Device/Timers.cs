using System.Buffers.Binary;
using Microsoft.Extensions.Logging;

namespace Tunnel.Device;

/// <summary>
/// The peer's timers (whitepaper 6.1-6.5; kernel timers.c, wireguard-go timers.go) as deadlines on
/// the injected monotonic clock: no threads of their own. The host calls
/// <see cref="TunnelDevice.Tick"/> at or after <see cref="TunnelDevice.NextDeadlineNanos"/> and
/// every deadline that has passed fires once. Packet paths move deadlines with plain atomic writes
/// (no lock); a firing claims its deadline with a compare-exchange, so a deadline re-armed by a
/// packet while it fires is not lost twice nor fired twice. The device's <see cref="TimerQueue"/>
/// holds the peers with an armed deadline, each at its earliest one; only arming a deadline
/// earlier than that place touches the queue (<see cref="Arm"/>), pushing one later does not.
/// </summary>
public sealed partial class Peer
{
    internal const long Never = long.MaxValue;

    // Retransmit an initiation that got no response (REKEY_TIMEOUT + jitter), give up after
    // REKEY_ATTEMPT_TIME.
    private long _retransmitHandshakeDeadline;
    // Passive keepalive: we received data and sent nothing for KEEPALIVE_TIMEOUT.
    private long _sendKeepaliveDeadline;
    // We sent data and heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT: the peer may have lost
    // our session, start a new handshake.
    private long _newHandshakeDeadline;
    // No new session for 3 x REJECT_AFTER_TIME: zero all key material.
    private long _zeroKeyMaterialDeadline;
    // PersistentKeepaliveInterval after any authenticated packet in either direction.
    private long _persistentKeepaliveDeadline;

    private int _handshakeAttempts;
    private volatile bool _needAnotherKeepalive;
    private volatile bool _sentLastMinuteHandshake;
    private long _lastSentHandshakeNanos;
    private bool _hasSentHandshake;
    // After the spacing was restarted: no initiation before this (0 = none); see
    // RestartHandshakeSpacingLocked.
    private long _initiationNotBeforeNanos;
    // The last authenticated packet in either direction (long.MinValue = none): the post-fork
    // rekey goes to the peers with recent traffic first (RekeyPacer).
    private long _lastTrafficNanos = long.MinValue;

    internal long LastTrafficNanos => Volatile.Read(ref _lastTrafficNanos);

    // The device's timer queue: when it looks at this peer next (Never = not queued), where in its
    // heap (-1 = not queued), and the tie-break among peers due at once (creation order). Written by
    // the queue under its lock; TimerDueAt is read lock-free by Arm.
    internal long TimerDueAt = Never;
    internal int TimerSlot = -1;
    internal long TimerOrder;

    private void InitTimers()
    {
        TimerOrder = _device.Timers.NextOrder();
        StopTimers();
    }

    private void StopTimers()
    {
        Volatile.Write(ref _retransmitHandshakeDeadline, Never);
        Volatile.Write(ref _sendKeepaliveDeadline, Never);
        Volatile.Write(ref _newHandshakeDeadline, Never);
        Volatile.Write(ref _zeroKeyMaterialDeadline, Never);
        Volatile.Write(ref _persistentKeepaliveDeadline, Never);
        _device.Timers.Unschedule(this);
    }

    /// <summary>
    /// Sets <paramref name="deadline"/> to <paramref name="due"/> and queues the peer if that is
    /// earlier than its place in the timer queue. The exchange is the full fence that pairs with the
    /// queue's (see <see cref="TimerQueue"/>). A deadline moved later needs nothing: the place the
    /// old one had is earlier still, and when it comes the queue reads the new one.
    /// </summary>
    private void Arm(ref long deadline, long due)
    {
        long old = Interlocked.Exchange(ref deadline, due);
        if ((old == Never || due < old) && due < Volatile.Read(ref TimerDueAt))
            _device.Timers.Schedule(this, due);
    }

    /// <summary>Queues the peer at its deadlines as they stand (they were written directly: a restore).</summary>
    internal void ScheduleTimers() => _device.Timers.Schedule(this, NextDeadline);

    /// <summary>The earliest armed deadline, or <see cref="Never"/>.</summary>
    internal long NextDeadline =>
        Math.Min(Math.Min(Volatile.Read(ref _retransmitHandshakeDeadline), Volatile.Read(ref _sendKeepaliveDeadline)),
            Math.Min(Math.Min(Volatile.Read(ref _newHandshakeDeadline), Volatile.Read(ref _zeroKeyMaterialDeadline)),
                Volatile.Read(ref _persistentKeepaliveDeadline)));

    /// <summary>Fires every deadline at or before <paramref name="now"/>.</summary>
    internal void Tick(long now)
    {
        if (Claim(ref _retransmitHandshakeDeadline, now))
            ExpiredRetransmitHandshake(now);
        if (Claim(ref _sendKeepaliveDeadline, now))
            ExpiredSendKeepalive(now);
        if (Claim(ref _newHandshakeDeadline, now))
            SendHandshakeInitiation(isRetry: false);
        if (Claim(ref _zeroKeyMaterialDeadline, now))
            ClearSessions();
        if (Claim(ref _persistentKeepaliveDeadline, now) && PersistentKeepaliveInterval != 0)
            SendKeepaliveOrStaged();
    }

    private static bool Claim(ref long deadline, long now)
    {
        long seen = Volatile.Read(ref deadline);
        return seen <= now && Interlocked.CompareExchange(ref deadline, Never, seen) == seen;
    }

    private void ExpiredRetransmitHandshake(long now)
    {
        if (Volatile.Read(ref _handshakeAttempts) > Constants.MaxTimerHandshakes)
        {
            // REKEY_ATTEMPT_TIME is over: stop trying, drop what waited for the session, and make
            // sure the keys that may remain get zeroed eventually. The passive keepalive goes too
            // (kernel and wireguard-go delete it): it would only start the handshake again.
            Volatile.Write(ref _sendKeepaliveDeadline, Never);
            _staged.Clear();
            if (_device.Logger.IsEnabled(LogLevel.Information))
                _device.Logger.LogInformation("{Peer}: no handshake response after {Attempts} attempts, giving up",
                    this, Constants.MaxTimerHandshakes + 2);
            if (Interlocked.CompareExchange(ref _zeroKeyMaterialDeadline, now + Constants.ZeroKeyMaterialAfterNanos, Never) == Never)
                ScheduleTimers();
            return;
        }
        Interlocked.Increment(ref _handshakeAttempts);
        SendHandshakeInitiation(isRetry: true);
    }

    private void ExpiredSendKeepalive(long now)
    {
        SendKeepaliveOrStaged();
        if (_needAnotherKeepalive)
        {
            _needAnotherKeepalive = false;
            Arm(ref _sendKeepaliveDeadline, now + Constants.KeepaliveTimeoutNanos);
        }
    }

    /// <summary>Random 0..REKEY_TIMEOUT_JITTER so two peers do not retry in lock step; from the
    /// device's generator so virtual-time runs are reproducible.</summary>
    private long Jitter()
    {
        Span<byte> bytes = stackalloc byte[sizeof(uint)];
        _device.FillRandom(bytes);
        return BinaryPrimitives.ReadUInt32LittleEndian(bytes) % (Constants.RekeyTimeoutJitterMaxNanos + 1);
    }

    // ---- events (names as in the kernel's timers.h) ----

    /// <summary>A data packet (not a keepalive) was sent.</summary>
    private void TimersDataSent(long now)
    {
        if (Volatile.Read(ref _newHandshakeDeadline) == Never)
            Arm(ref _newHandshakeDeadline, now + Constants.KeepaliveTimeoutNanos + Constants.RekeyTimeoutNanos + Jitter());
    }

    /// <summary>A data packet (not a keepalive) was received.</summary>
    private void TimersDataReceived(long now)
    {
        if (Volatile.Read(ref _sendKeepaliveDeadline) == Never)
            Arm(ref _sendKeepaliveDeadline, now + Constants.KeepaliveTimeoutNanos);
        else
            _needAnotherKeepalive = true;
    }

    /// <summary>Any authenticated packet (handshake, data or keepalive) was sent.</summary>
    private void TimersAnyAuthenticatedPacketSent()
    {
        if (Volatile.Read(ref _sendKeepaliveDeadline) != Never)
            Volatile.Write(ref _sendKeepaliveDeadline, Never);
    }

    /// <summary>Any authenticated packet was received.</summary>
    private void TimersAnyAuthenticatedPacketReceived()
    {
        if (Volatile.Read(ref _newHandshakeDeadline) != Never)
            Volatile.Write(ref _newHandshakeDeadline, Never);
    }

    /// <summary>Any authenticated packet in either direction.</summary>
    private void TimersAnyAuthenticatedPacketTraversal(long now)
    {
        Volatile.Write(ref _lastTrafficNanos, now);
        ushort interval = PersistentKeepaliveInterval;
        if (interval != 0)
            Arm(ref _persistentKeepaliveDeadline, now + interval * Constants.NanosPerSecond);
    }

    private void TimersHandshakeInitiated(long now) =>
        Arm(ref _retransmitHandshakeDeadline, now + Constants.RekeyTimeoutNanos + Jitter());

    /// <summary>An initiation the responder would still refuse: retry it as soon as it will take it.</summary>
    private void TimersHandshakeRetryAt(long due)
    {
        if (due < Volatile.Read(ref _retransmitHandshakeDeadline))
            Arm(ref _retransmitHandshakeDeadline, due);
    }

    /// <summary>The persistent keepalive interval was set: arm it from now, or stop it.</summary>
    private void TimersPersistentKeepaliveSet(ushort interval)
    {
        if (interval == 0)
            Volatile.Write(ref _persistentKeepaliveDeadline, Never);
        else
            Arm(ref _persistentKeepaliveDeadline, _device.Clock.MonotonicNanos + interval * Constants.NanosPerSecond);
    }

    private void TimersHandshakeComplete()
    {
        Volatile.Write(ref _retransmitHandshakeDeadline, Never);
        Volatile.Write(ref _handshakeAttempts, 0);
        Volatile.Write(ref _lastHandshakeUtcTicks, _device.Clock.UtcNow.UtcTicks);
        _device.CountHandshakeCompleted();
    }

    private void TimersSessionDerived(long now) =>
        Arm(ref _zeroKeyMaterialDeadline, now + Constants.ZeroKeyMaterialAfterNanos);

    /// <summary>For the state digest: every deadline and counter of the timers.</summary>
    internal void WriteTimerState(BinaryWriter writer)
    {
        writer.Write(Volatile.Read(ref _retransmitHandshakeDeadline));
        writer.Write(Volatile.Read(ref _sendKeepaliveDeadline));
        writer.Write(Volatile.Read(ref _newHandshakeDeadline));
        writer.Write(Volatile.Read(ref _zeroKeyMaterialDeadline));
        writer.Write(Volatile.Read(ref _persistentKeepaliveDeadline));
        writer.Write(Volatile.Read(ref _handshakeAttempts));
        writer.Write(_needAnotherKeepalive);
        writer.Write(_sentLastMinuteHandshake);
        writer.Write(Volatile.Read(ref _lastTrafficNanos));
        lock (_lock)
        {
            writer.Write(_lastSentHandshakeNanos);
            writer.Write(_hasSentHandshake);
            writer.Write(_initiationNotBeforeNanos);
        }
    }
}
