using Tunnel.Device;

namespace ForkSim;

/// <summary>What happens to peer A's VM at the event point.</summary>
public enum ForkEventKind
{
    /// <summary>Snapshot, then restore the snapshot into several clones (the source is discarded).</summary>
    Fork,

    /// <summary>SuspendPrepare, the guest sleeps, PostSuspend: one guest, no copy.</summary>
    Suspend,

    /// <summary>HibernationPrepare, the guest is off, PostHibernation: one guest, no copy.</summary>
    Hibernate,
}

/// <summary>Which hypervisor-updated word the hot path reads.</summary>
public enum PullCounterKind
{
    /// <summary>The vmgenid CTRA page (Chalios' QEMU extension).</summary>
    VmGenIdCtra,

    /// <summary>The virtio-rng copy-on-leak generation word.</summary>
    CopyOnLeak,
}

/// <summary>Where, relative to A's send path, the snapshot is taken.</summary>
public enum ForkPoint
{
    /// <summary>At the scenario's time, between any two scheduler events.</summary>
    Anywhere,

    /// <summary>At the first data packet from the scenario's time on, after it was encrypted (stage
    /// 1) and before it was transmitted (stage 2): the snapshot holds a sealed, unsent datagram.</summary>
    BetweenEncryptAndTransmit,
}

/// <summary>
/// One fork scenario: every choice is here, so a scenario is a pure function of this record
/// (same scenario, same <see cref="ForkScenarioResult"/>).
/// </summary>
public sealed record ForkScenario
{
    /// <summary>Seeds the scheduler's tie-breaks, the VMM (VM IDs, kernel seeds, device entropy), both
    /// peers' keys and peer B's randomness.</summary>
    public ulong Seed { get; init; } = 1;

    public ForkGuardMode Mode { get; init; } = ForkGuardMode.Both;

    /// <summary>The counter the hot path reads in HotPath and Both modes.</summary>
    public PullCounterKind PullCounter { get; init; } = PullCounterKind.VmGenIdCtra;

    public ForkEventKind Event { get; init; } = ForkEventKind.Fork;

    /// <summary>Clones started from the snapshot (2 to 8). Ignored for suspend and hibernate.</summary>
    public int Clones { get; init; } = 3;

    /// <summary>
    /// Per clone (cycled when shorter than <see cref="Clones"/>): time from the clone's resume to
    /// its kernel handling the vmgenid Notify and the virtio-rng leak interrupt. The push model's
    /// race window.
    /// </summary>
    public IReadOnlyList<TimeSpan> NotifyDelays { get; init; } = [TimeSpan.Zero];

    /// <summary>Virtual time of the event (the snapshot, or the suspend).</summary>
    public TimeSpan EventAt { get; init; } = TimeSpan.FromSeconds(2);

    public ForkPoint ForkPoint { get; init; } = ForkPoint.Anywhere;

    /// <summary>Data packets per second that A (and each clone) sends; B answers each one.</summary>
    public double PacketsPerSecond { get; init; } = 50;

    /// <summary>False: the TEST-ONLY negative control that leaves the clones' random generators
    /// un-reseeded (<see cref="ForkNotify.ForkKernel.ReseedRandomOnFork"/>).</summary>
    public bool ReseedRandomOnFork { get; init; } = true;

    /// <summary>Time between one clone's resume and the next one's (clones of real VMs do not
    /// start in the same microsecond).</summary>
    public TimeSpan CloneStagger { get; init; } = TimeSpan.Zero;

    /// <summary>How long a suspended or hibernated guest stays down.</summary>
    public TimeSpan SleepFor { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Simulated time after the event (after the wake-up for suspend/hibernate).</summary>
    public TimeSpan RunAfterEvent { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>One-way latency of the wire between A's guests and B.</summary>
    public TimeSpan WireLatency { get; init; } = TimeSpan.FromMilliseconds(1);

    /// <summary>Notification delay of clone <paramref name="clone"/> (0-based).</summary>
    public TimeSpan NotifyDelayOf(int clone) =>
        NotifyDelays.Count == 0 ? TimeSpan.Zero : NotifyDelays[clone % NotifyDelays.Count];

    /// <summary>Guests that run after the event: the clones, or the one guest that slept.</summary>
    public int GuestsAfterEvent => Event == ForkEventKind.Fork ? Clones : 1;

    public override string ToString() =>
        $"seed {Seed}, {Mode}{(Mode is ForkGuardMode.HotPath or ForkGuardMode.Both ? $"/{PullCounter}" : "")}, {Event}"
        + (Event == ForkEventKind.Fork ? $" x{Clones}, delays [{string.Join(", ", NotifyDelays.Select(d => $"{d.TotalMilliseconds:0.###} ms"))}], {ForkPoint}" : $" {SleepFor.TotalMilliseconds:0} ms")
        + $" at {EventAt.TotalMilliseconds:0.###} ms, {PacketsPerSecond:0.#} pkt/s"
        + (ReseedRandomOnFork ? "" : ", RNG NOT reseeded")
        + (CloneStagger > TimeSpan.Zero ? $", stagger {CloneStagger.TotalMilliseconds:0.###} ms" : "");
}
