using System.Globalization;
using System.Text;

namespace ForkSim;

/// <summary>What one guest after the event (a clone, or the guest that slept) did.</summary>
/// <param name="Name">The guest's name (clone1, clone2, ... or vm0).</param>
/// <param name="ResumedAt">Virtual time its vCPUs ran again.</param>
/// <param name="NotifiedAt">When its kernel first called the chain with the event (PostVmFork,
/// or PostSuspend/PostHibernation), or null if it never did.</param>
/// <param name="FirstInitiationAt">When it first put a handshake initiation on the wire after
/// resuming, or null.</param>
/// <param name="FirstNewKeyPacketAt">When it first sent a transport packet under keys derived after
/// the event, or null.</param>
/// <param name="StalePackets">Transport packets it sent after resuming under keys derived before
/// the event.</param>
/// <param name="DataPacketsSent">Transport packets it sent after resuming (any key).</param>
/// <param name="HotPathDrops">Packets its hot path dropped (<c>TunnelDevice.Fork.StaleKeyDrops</c>).</param>
/// <param name="SessionsCleared">Times its fork guard cleared every session.</param>
public sealed record GuestOutcome(
    string Name,
    TimeSpan ResumedAt,
    TimeSpan? NotifiedAt,
    TimeSpan? FirstInitiationAt,
    TimeSpan? FirstNewKeyPacketAt,
    long StalePackets,
    long DataPacketsSent,
    long HotPathDrops,
    long SessionsCleared)
{
    /// <summary>Resume to the first transport packet under new keys, or null if none was sent.</summary>
    public TimeSpan? ResumeToNewKey => FirstNewKeyPacketAt - ResumedAt;

    /// <summary>Notification to the first initiation after resume (negative: the hot path started it
    /// before the notification arrived), or null.</summary>
    public TimeSpan? NotificationToInitiation => FirstInitiationAt - NotifiedAt;
}

/// <summary>
/// What the wire observer and the guests saw in one <see cref="ForkScenario"/>. Deterministic:
/// the same scenario gives an equal <see cref="Fingerprint"/>.
/// </summary>
public sealed record ForkScenarioResult
{
    public required ForkScenario Scenario { get; init; }

    /// <summary>Virtual time of the event (the snapshot, or the suspend).</summary>
    public TimeSpan EventTime { get; init; }

    /// <summary>True when the snapshot was taken while a sealed datagram waited in A's transmit slot.</summary>
    public bool SnapshotHeldPendingTransmit { get; init; }

    /// <summary>Whether A had a live session when the event came (if not, nothing could be reused).</summary>
    public bool HadSessionAtEvent { get; init; }

    /// <summary>Transport messages seen on the wire, both directions, over the whole run.</summary>
    public long TransportPackets { get; init; }

    /// <summary>(key, nonce) pairs used for two or more DIFFERENT ciphertexts: catastrophic.</summary>
    public int ReusedPairs { get; init; }

    /// <summary>Packets sent under an already used (key, nonce) with a different ciphertext.</summary>
    public long ReusedPackets { get; init; }

    /// <summary>Byte-identical retransmissions of a datagram already seen (a replay, not a leak).</summary>
    public long IdenticalResends { get; init; }

    /// <summary>Transport packets sent after the event under keys derived before it: the packets at risk.</summary>
    public long StalePackets { get; init; }

    /// <summary>Handshake ephemeral public keys sent by two or more different guests.</summary>
    public int IdenticalEphemerals { get; init; }

    /// <summary>Of those, ephemerals whose initiations sealed different timestamps: a (key, nonce)
    /// reused inside the handshake.</summary>
    public int HandshakeNonceReuse { get; init; }

    /// <summary>SHA-256 over every datagram on the wire, with its time and sender.</summary>
    public string WireDigest { get; init; } = "";

    public IReadOnlyList<GuestOutcome> Guests { get; init; } = [];

    /// <summary>Hot-path drops over every guest after the event.</summary>
    public long HotPathDrops => Guests.Sum(g => g.HotPathDrops);

    /// <summary>The slowest guest's resume-to-new-key time (null if some guest never got new keys).</summary>
    public TimeSpan? WorstResumeToNewKey =>
        Guests.Count == 0 || Guests.Any(g => g.ResumeToNewKey is null) ? null : Guests.Max(g => g.ResumeToNewKey);

    /// <summary>The fastest guest's resume-to-new-key time, or null if none got new keys.</summary>
    public TimeSpan? BestResumeToNewKey =>
        Guests.Where(g => g.ResumeToNewKey is not null).Select(g => g.ResumeToNewKey).DefaultIfEmpty(null).Min();

    /// <summary>Every number of the result in one line, for determinism checks and logs.</summary>
    public string Fingerprint
    {
        get
        {
            var sb = new StringBuilder();
            sb.Append(CultureInfo.InvariantCulture,
                $"event {EventTime.Ticks} pending {SnapshotHeldPendingTransmit} session {HadSessionAtEvent} transport {TransportPackets} reused {ReusedPairs}/{ReusedPackets} resends {IdenticalResends} stale {StalePackets} eph {IdenticalEphemerals}/{HandshakeNonceReuse} wire {WireDigest}");
            foreach (GuestOutcome g in Guests)
                sb.Append(CultureInfo.InvariantCulture,
                    $" | {g.Name} {g.ResumedAt.Ticks} {g.NotifiedAt?.Ticks} {g.FirstInitiationAt?.Ticks} {g.FirstNewKeyPacketAt?.Ticks} {g.StalePackets} {g.DataPacketsSent} {g.HotPathDrops} {g.SessionsCleared}");
            return sb.ToString();
        }
    }

    /// <summary>A readable report: totals then one line per guest.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"scenario: {Scenario}");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"  event at {Ms(EventTime)}{(SnapshotHeldPendingTransmit ? " (a sealed datagram was pending in the snapshot)" : "")}{(HadSessionAtEvent ? "" : " (no live session at the event)")}");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"  transport packets {TransportPackets}, REUSED (key, nonce) pairs {ReusedPairs} ({ReusedPackets} packets), identical resends {IdenticalResends}");
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"  packets at risk (sent under pre-event keys) {StalePackets}, hot-path drops {HotPathDrops}, identical ephemerals {IdenticalEphemerals} (handshake nonce reuse {HandshakeNonceReuse})");
        foreach (GuestOutcome g in Guests)
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"  {g.Name}: resumed {Ms(g.ResumedAt)}, notified {Ms(g.NotifiedAt)}, first initiation {Ms(g.FirstInitiationAt)}, first new-key packet {Ms(g.FirstNewKeyPacketAt)} (resume +{Ms(g.ResumeToNewKey)}), stale {g.StalePackets}/{g.DataPacketsSent}, hot-path drops {g.HotPathDrops}, cleared {g.SessionsCleared}");
        return sb.ToString();
    }

    internal static string Ms(TimeSpan? t) =>
        t is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalMilliseconds:0.###} ms") : "never";
}
