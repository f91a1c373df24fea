using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// The protocol's constants, as named in the WireGuard whitepaper (section 6) and the kernel's
/// <c>drivers/net/wireguard/messages.h</c>. Times are in nanoseconds because <see cref="IClock"/>
/// speaks nanoseconds; <c>const</c> so the per-packet path compares against immediates.
/// </summary>
public static class Constants
{
    public const long NanosPerSecond = 1_000_000_000;
    public const long NanosPerMillisecond = 1_000_000;

    // ---- Limits on one session (whitepaper 6.1) ----

    /// <summary>After this many messages sent under a keypair, the initiator starts a new handshake.</summary>
    public const ulong RekeyAfterMessages = 1UL << 60;

    /// <summary>
    /// A keypair is never used for more messages than this (2^64 - 2^13 - 1, the whitepaper's and
    /// wireguard-go's value). The kernel uses U64_MAX - COUNTER_WINDOW_SIZE - 1 = 2^64 - 8130,
    /// 62 fewer; both keep the replay window's arithmetic clear of overflow.
    /// </summary>
    public const ulong RejectAfterMessages = ulong.MaxValue - (1UL << 13);

    public const long RekeyAfterTimeNanos = 120 * NanosPerSecond;
    public const long RejectAfterTimeNanos = 180 * NanosPerSecond;

    /// <summary>How long an initiator keeps retrying a handshake before giving up.</summary>
    public const long RekeyAttemptTimeNanos = 90 * NanosPerSecond;

    /// <summary>Retransmit a handshake initiation after this long without a response (plus jitter).</summary>
    public const long RekeyTimeoutNanos = 5 * NanosPerSecond;

    /// <summary>
    /// Upper bound of the random jitter added to <see cref="RekeyTimeoutNanos"/>, so that two peers
    /// do not retransmit in lock step. Kernel: HZ/3 jiffies; wireguard-go: 0..333 ms.
    /// </summary>
    public const long RekeyTimeoutJitterMaxNanos = 333 * NanosPerMillisecond;

    /// <summary>Send an empty (keepalive) packet after receiving data and sending nothing for this long.</summary>
    public const long KeepaliveTimeoutNanos = 10 * NanosPerSecond;

    /// <summary>Number of initiation retransmissions within <see cref="RekeyAttemptTimeNanos"/> (kernel MAX_TIMER_HANDSHAKES).</summary>
    public const int MaxTimerHandshakes = (int)(RekeyAttemptTimeNanos / RekeyTimeoutNanos);

    /// <summary>All keys of a peer are zeroed when no new session was derived for 3 x REJECT_AFTER_TIME.</summary>
    public const long ZeroKeyMaterialAfterNanos = 3 * RejectAfterTimeNanos;

    // ---- Handshake flood protection ----

    /// <summary>
    /// A responder consumes at most this many initiations per second from one peer (kernel
    /// INITIATIONS_PER_SECOND, checked in noise.c; wireguard-go HandshakeInitationRate).
    /// </summary>
    public const int InitiationsPerSecond = 50;

    /// <summary>Minimum spacing of consumed initiations from one peer: 1 s / 50 = 20 ms.</summary>
    public const long InitiationMinIntervalNanos = NanosPerSecond / InitiationsPerSecond;

    /// <summary>
    /// Our own spacing of two initiations to one peer when the REKEY_TIMEOUT spacing was restarted
    /// (sessions cleared or expired): the responder refuses an initiation that arrives within
    /// <see cref="InitiationMinIntervalNanos"/> of the last it took from us, and network jitter can
    /// bring two sends closer together on arrival, so twice that.
    /// </summary>
    public const long InitiationRespacingNanos = 2 * InitiationMinIntervalNanos;

    // ---- Cookies (whitepaper 5.4.7) ----

    /// <summary>The responder's cookie secret is replaced after this long (kernel COOKIE_SECRET_MAX_AGE).</summary>
    public const long CookieRefreshTimeNanos = 120 * NanosPerSecond;

    /// <summary>An initiator stops using a received cookie this long before the responder would rotate it.</summary>
    public const long CookieSecretLatencyNanos = 5 * NanosPerSecond;

    // ---- Queues and table sizes ----

    /// <summary>Packets held for a peer while it has no session (kernel MAX_STAGED_PACKETS).</summary>
    public const int MaxStagedPackets = 128;

    /// <summary>Handshake messages queued for processing; 1/8 of this full means "under load".</summary>
    public const int MaxQueuedIncomingHandshakes = 4096;

    public const int MaxPeersPerDevice = 1 << 20;

    // ---- Replay window (RFC 6479, kernel counter_values) ----

    /// <summary>Bits in the replay bitmap: a ring of 128 64-bit words.</summary>
    public const int CounterBitsTotal = 8192;

    /// <summary>One word of the ring is always being recycled, so its bits do not count towards the window.</summary>
    public const int CounterRedundantBits = 64;

    /// <summary>How far behind the greatest counter seen a packet may arrive and still be accepted: 8128.</summary>
    public const int CounterWindowSize = CounterBitsTotal - CounterRedundantBits;

    // ---- Wire sizes ----
    // Message sizes, offsets and types live with each message (Messages.cs), mac and cookie sizes
    // in CookieConstants, key sizes with the key types (Tunnel.Crypto).
}
