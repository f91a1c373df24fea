using ForkNotify;
using Tunnel.Crypto;
using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>How a simulation is hosted (not part of the scenario: it does not change the result).</summary>
public sealed record ForkSimulationOptions
{
    /// <summary>Carry every datagram through real 127.0.0.1 UDP sockets (the demo) instead of in memory.</summary>
    public bool LoopbackUdp { get; init; }

    /// <summary>Keep the VMM's <see cref="SimulationTrace"/> (off for bulk runs).</summary>
    public bool Trace { get; init; }
}

/// <summary>
/// Runs one <see cref="ForkScenario"/>: peer B on the wire, peer A inside a guest of
/// <c>Vmm.CreateDeterministic(seed)</c> with vmgenid (with CTRA) and virtio-rng (with the leak
/// queues); traffic both ways; at the event point the VMM snapshots the guest and forks it into
/// clones with the scenario's notification delays (or suspends it); the <see cref="WireObserver"/>
/// judges what went over the wire.
/// </summary>
public sealed class ForkSimulation : IDisposable
{
    private readonly Vmm _vmm;
    private readonly PeerKeys _keys;
    private readonly List<PeerAWorkload> _workloads = new();
    private readonly Guest _source;
    private readonly PeerAWorkload _sourceWorkload;
    private readonly List<PeerAWorkload> _after = new();
    private VmSnapshot? _snapshot;
    private TimeSpan? _eventTime;
    private bool _pendingAtSnapshot;
    private bool _sessionAtEvent;

    public ForkSimulation(ForkScenario scenario, ForkSimulationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        if (scenario.Event == ForkEventKind.Fork)
            ArgumentOutOfRangeException.ThrowIfLessThan(scenario.Clones, 1);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(scenario.PacketsPerSecond);
        options ??= new ForkSimulationOptions();
        Scenario = scenario;
        PacketInterval = TimeSpan.FromTicks(Math.Max(1, (long)(TimeSpan.TicksPerSecond / scenario.PacketsPerSecond)));

        _keys = new PeerKeys(scenario.Seed ^ 0x666f726b73696d4bUL);
        _vmm = Vmm.CreateDeterministic(scenario.Seed);
        _vmm.Trace.Enabled = options.Trace;
        Observer = new WireObserver { Log = options.Trace ? new List<string>() : null };
        Wire = new Wire(_vmm.Scheduler, scenario.WireLatency, Observer, options.LoopbackUdp);
        PeerB = new PeerBHost(_vmm.Scheduler, Wire, _keys.PrivateKeyB, _keys.PublicKeyA, scenario.Seed ^ 0x706565722d62UL);
        Observer.PeerB = PeerB.Endpoint;

        _source = _vmm.Boot(new GuestConfig { Workloads = [CreatePeerA] }, "vm0");
        _sourceWorkload = _workloads[0];
    }

    /// <summary>
    /// One scheduling step of a guest: the time from an interrupt handler (a notification) to the
    /// next thing user space does. A notification with delay 0 is handled within it.
    /// </summary>
    public static TimeSpan SchedulingStep => PeerAWorkload.UserSpaceLatency;

    public ForkScenario Scenario { get; }

    public Vmm Vmm => _vmm;

    public Wire Wire { get; }

    public WireObserver Observer { get; }

    internal PeerBHost PeerB { get; }

    internal byte[] PrivateKeyA => _keys.PrivateKeyA;

    internal byte[] PublicKeyB => _keys.PublicKeyB;

    internal TimeSpan PacketInterval { get; }

    /// <summary>Runs <paramref name="scenario"/> from boot to the end and returns what was seen.</summary>
    public static ForkScenarioResult Run(ForkScenario scenario, ForkSimulationOptions? options = null)
    {
        using var sim = new ForkSimulation(scenario, options);
        return sim.Run();
    }

    /// <summary>Runs the scenario from boot to the end (once).</summary>
    public ForkScenarioResult Run()
    {
        var scheduler = (DeterministicScheduler)_vmm.Scheduler;
        ScheduleEvent(scheduler);
        // The event may wait for the next encrypted packet; a scenario without traffic for 10 s is broken.
        TimeSpan giveUp = Scenario.EventAt + TimeSpan.FromSeconds(10);
        while (_eventTime is null && scheduler.Now < giveUp)
            scheduler.RunFor(TimeSpan.FromMilliseconds(10));
        if (_eventTime is not { } at)
            throw new InvalidOperationException($"the event never happened: {Scenario}");
        TimeSpan end = at + Scenario.RunAfterEvent + (Scenario.Event == ForkEventKind.Fork ? TimeSpan.Zero : Scenario.SleepFor)
            + Scenario.CloneStagger * Math.Max(0, Scenario.GuestsAfterEvent - 1);
        scheduler.RunUntil(end);
        return Collect(at);
    }

    /// <summary>The offset of a guest's first packet after resume within one packet interval (seeded).</summary>
    internal TimeSpan TrafficPhase(ushort tag)
    {
        ulong r = new DeterministicEntropy(Scenario.Seed * 0x9E3779B97F4A7C15UL + tag).NextUInt64();
        return TimeSpan.FromTicks((long)(r % (ulong)PacketInterval.Ticks));
    }

    private IGuestWorkload CreatePeerA(GuestContext ctx)
    {
        var w = new PeerAWorkload(ctx, this, (ushort)_workloads.Count);
        _workloads.Add(w);
        return w;
    }

    private void ScheduleEvent(DeterministicScheduler scheduler)
    {
        switch (Scenario.Event)
        {
            case ForkEventKind.Fork when Scenario.ForkPoint == ForkPoint.BetweenEncryptAndTransmit:
                scheduler.RunUntil(Scenario.EventAt);
                _sourceWorkload.AfterNextEncrypt = SnapshotAndFork;
                break;
            case ForkEventKind.Fork:
                scheduler.Schedule(Scenario.EventAt, SnapshotAndFork);
                break;
            default:
                _source.Scheduler.Schedule(Scenario.EventAt, Sleep);
                break;
        }
    }

    private void MarkEvent()
    {
        _eventTime = _vmm.Scheduler.Now;
        _sessionAtEvent = _sourceWorkload.HasLiveSession;
        _pendingAtSnapshot = _sourceWorkload.HeldCount > 0;
        Observer.MarkEvent(_vmm.Scheduler.Now);
    }

    /// <summary>
    /// Pauses the source, copies it, discards it (its copies carry on), and starts the clones, each
    /// with a fresh VM ID and its own notification delay.
    /// </summary>
    private void SnapshotAndFork()
    {
        MarkEvent();
        // The source is discarded, so no leak-on-save signal: nobody would run to handle it.
        VmSnapshot snapshot = _vmm.Snapshot(_source, new SnapshotOptions { SignalLeakOnSave = false });
        _snapshot = snapshot;
        _source.Destroy();
        for (int i = 0; i < Scenario.Clones; i++)
        {
            TimeSpan delay = Scenario.NotifyDelayOf(i);
            var options = new RestoreOptions
            {
                Name = $"clone{i + 1}",
                VmGenIdNotifyDelay = delay,
                LeakInterruptDelay = delay,
            };
            _vmm.Scheduler.Schedule(Scenario.CloneStagger * i, () =>
            {
                _vmm.Restore(snapshot, options);
                _after.Add(_workloads[^1]);
            });
        }
    }

    /// <summary>Suspend or hibernate: the prepare event, the machine down for a while, the post event.</summary>
    private void Sleep()
    {
        MarkEvent();
        bool hibernate = Scenario.Event == ForkEventKind.Hibernate;
        _source.Kernel.Pm.CallChainRobust(
            hibernate ? PmEvent.HibernationPrepare : PmEvent.SuspendPrepare,
            hibernate ? PmEvent.PostHibernation : PmEvent.PostSuspend);
        _sourceWorkload.Sleep();
        _after.Add(_sourceWorkload);
        _source.Scheduler.Schedule(Scenario.SleepFor, () =>
        {
            _sourceWorkload.Wake();
            _source.Kernel.Pm.CallChain(hibernate ? PmEvent.PostHibernation : PmEvent.PostSuspend);
        });
    }

    private ForkScenarioResult Collect(TimeSpan eventTime)
    {
        var guests = new List<GuestOutcome>();
        foreach (PeerAWorkload w in _after.OrderBy(w => w.Name, StringComparer.Ordinal))
        {
            SenderStats s = Observer.StatsOf(w.Name);
            guests.Add(new GuestOutcome(w.Name, w.ResumedAt ?? eventTime, w.NotifiedAt, s.FirstInitiationAt,
                s.FirstNewKeyPacketAt, s.StalePackets, s.TransportPackets, w.Device.Fork.StaleKeyDrops + w.HeldDrops, w.Guard.SessionsCleared));
        }
        return new ForkScenarioResult
        {
            Scenario = Scenario,
            EventTime = eventTime,
            SnapshotHeldPendingTransmit = _pendingAtSnapshot,
            HadSessionAtEvent = _sessionAtEvent,
            TransportPackets = Observer.TransportPackets,
            ReusedPairs = Observer.ReusedPairs,
            ReusedPackets = Observer.ReusedPackets,
            IdenticalResends = Observer.IdenticalResends,
            StalePackets = Observer.StalePackets,
            IdenticalEphemerals = Observer.IdenticalEphemerals,
            HandshakeNonceReuse = Observer.HandshakeNonceReuse,
            WireDigest = Observer.Digest,
            Guests = guests,
        };
    }

    public void Dispose()
    {
        foreach (PeerAWorkload w in _workloads)
            w.Dispose();
        // The snapshot holds a copy of A's keys like any other memory image: zero it too.
        foreach (object state in _snapshot?.Workloads ?? [])
            (state as PeerAState)?.Device.Dispose();
        PeerB.Dispose();
        Wire.Dispose();
        _vmm.Dispose();
        _keys.Dispose();
    }
}
