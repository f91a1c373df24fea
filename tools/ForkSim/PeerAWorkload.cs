using ForkNotify;
using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>
/// Peer A, the tunnel inside the VM: a <see cref="TunnelDevice"/> whose randomness is the guest
/// kernel's (<c>ctx.Kernel.Random</c>, copied by a snapshot), whose clock is the scheduler's, with a
/// <see cref="ForkGuard"/> in the scenario's mode, and its datagrams held until a separate flush
/// event (as the daemon's UDP batch holds them) so a snapshot can fall between the hot-path check
/// and the wire. It sends numbered packets to B at the scenario's rate.
/// Built by the VMM's workload factory for the original guest and for every clone; a clone's
/// configuration and sessions come from <see cref="RestoreState"/>.
/// </summary>
internal sealed class PeerAWorkload : IGuestWorkload, IDeviceIo, IDisposable
{
    /// <summary>How often the device's timers are checked (well inside the protocol's slack).</summary>
    public static readonly TimeSpan TickInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// User space runs after the interrupt handlers of the same instant: a notification with delay 0
    /// is handled before the guest's first packet after resume, as an interrupt pending at resume
    /// would be on real hardware.
    /// </summary>
    public static readonly TimeSpan UserSpaceLatency = TimeSpan.FromTicks(10); // 1 us

    private readonly GuestContext _ctx;
    private readonly ForkSimulation _sim;
    private readonly Endpoint _endpoint;
    private readonly NotifierBlock _pmBlock;
    private readonly byte[] _packet = new byte[TrafficPacket.Size];
    // Datagrams the engine handed over and the wire has not taken yet, with the generation the
    // engine validated (null: a message under no keys). Guest memory: part of the snapshot.
    private List<HeldDatagram> _held = [];
    private uint _nextSequence;
    private bool _flushScheduled;
    private bool _asleep;

    public PeerAWorkload(GuestContext ctx, ForkSimulation sim, ushort tag)
    {
        _ctx = ctx;
        _sim = sim;
        Tag = tag;
        ForkScenario scenario = sim.Scenario;
        ctx.Kernel.ReseedRandomOnFork = scenario.ReseedRandomOnFork;
        _endpoint = sim.Wire.Attach(ctx.Name, ctx.Scheduler, OnDatagram);
        Device = new TunnelDevice(new DeviceOptions
        {
            Clock = new SchedulerClock(ctx.Scheduler),
            Random = ctx.Kernel.Random,
            Name = "wg0",
        }, this);
        if (!ctx.IsClone)
            Configure();
        // The daemon's timer thread is woken when the fork's rekey is queued (TimerThread): here a
        // tick one user-space latency later, in addition to the periodic ones.
        Device.TimersBroughtForward = () => _ctx.Scheduler.Schedule(UserSpaceLatency, WokenTick);
        Guard = new ForkGuard(Device, ctx.Kernel, scenario.Mode, PullCounter(ctx, scenario));
        // Lowest priority: runs after the guard, to see the result and flush what it sent.
        _pmBlock = new NotifierBlock(OnPmEvent, int.MinValue) { Name = $"forksim {ctx.Name}" };
        ctx.Kernel.Pm.Register(_pmBlock);
    }

    public string Name => _ctx.Name;

    /// <summary>Written into every packet this guest sends, so clones' plaintexts differ.</summary>
    public ushort Tag { get; }

    public TunnelDevice Device { get; }

    public ForkGuard Guard { get; }

    /// <summary>When the vCPUs last resumed (boot, restore or wake-up).</summary>
    public TimeSpan? ResumedAt { get; private set; }

    /// <summary>When the kernel first delivered the post-event notification after the last resume.</summary>
    public TimeSpan? NotifiedAt { get; private set; }

    /// <summary>Runs once, right after the next data packet is encrypted and before its flush.</summary>
    public Action? AfterNextEncrypt { get; set; }

    public long RepliesReceived { get; private set; }

    /// <summary>Held datagrams dropped at the flush because the pull counter moved while they waited.</summary>
    public long HeldDrops { get; private set; }

    /// <summary>Datagrams handed over by the engine and not yet on the wire.</summary>
    public int HeldCount => _held.Count;

    /// <summary>A keypair that can send now.</summary>
    public bool HasLiveSession => Device.Peers.FirstOrDefault()?.Keypairs.Current is { CanSend: true };

    private static IGenerationCounter? PullCounter(GuestContext ctx, ForkScenario scenario) =>
        scenario.Mode is ForkGuardMode.HotPath or ForkGuardMode.Both
            ? scenario.PullCounter == PullCounterKind.CopyOnLeak ? ctx.LeakCounter : ctx.VmGenIdCounter
            : null;

    private void Configure()
    {
        Device.SetPrivateKey(_sim.PrivateKeyA);
        Peer b = Device.AddPeer(_sim.PublicKeyB);
        b.Endpoint = _sim.PeerB.Endpoint;
        Device.AllowedIps.Insert(TrafficPacket.AddressB, 32, b);
    }

    public object CaptureState() => new PeerAState(Device.CaptureState(), _nextSequence, [.. _held]);

    public void RestoreState(object state)
    {
        var s = (PeerAState)state;
        Device.RestoreState(s.Device);
        _nextSequence = s.NextSequence;
        _held = [.. s.Held];
        // A clone is restored with its vCPUs paused and resumes at this very instant.
        ResumedAt = _ctx.Now;
    }

    public void OnResume()
    {
        ResumedAt ??= _ctx.Now;
        _ctx.Scheduler.Schedule(UserSpaceLatency, Flush);
        _ctx.Scheduler.Schedule(UserSpaceLatency + _sim.TrafficPhase(Tag), SendNext);
        _ctx.Scheduler.Schedule(UserSpaceLatency + TickInterval, Tick);
    }

    /// <summary>The machine goes to sleep (suspend or hibernate): nothing runs, nothing is received.</summary>
    public void Sleep() => _asleep = true;

    /// <summary>The machine is back; the caller then runs the post-event notifier chain.</summary>
    public void Wake()
    {
        _asleep = false;
        ResumedAt = _ctx.Now;
        NotifiedAt = null;
    }

    private void SendNext()
    {
        if (!_asleep)
        {
            TrafficPacket.Write(_packet, TrafficPacket.AddressA, TrafficPacket.AddressB, _nextSequence++, Tag);
            Device.SendPacket(_packet);
            if (AfterNextEncrypt is { } hook)
            {
                AfterNextEncrypt = null;
                hook();
            }
            ScheduleFlush();
        }
        _ctx.Scheduler.Schedule(_sim.PacketInterval, SendNext);
    }

    private void Tick()
    {
        if (!_asleep)
        {
            Device.Tick();
            ScheduleFlush();
        }
        _ctx.Scheduler.Schedule(TickInterval, Tick);
    }

    private void WokenTick()
    {
        if (_asleep)
            return;
        Device.Tick();
        ScheduleFlush();
    }

    private void OnDatagram(byte[] datagram, Endpoint from)
    {
        if (_asleep)
            return;
        Device.ReceiveDatagram(datagram, from);
        ScheduleFlush();
    }

    /// <summary>The wire takes held datagrams as its own event: another event (a snapshot) may come in between.</summary>
    private void ScheduleFlush()
    {
        if (_flushScheduled)
            return;
        _flushScheduled = true;
        _ctx.Scheduler.Schedule(TimeSpan.Zero, Flush);
    }

    private void Flush()
    {
        _flushScheduled = false;
        if (_asleep || _held.Count == 0)
            return;
        List<HeldDatagram> held = _held;
        _held = [];
        ulong? now = Device.Fork.Counter?.Read();
        foreach (HeldDatagram d in held)
        {
            // The daemon's UdpSendBatch check: the generation the engine validated, compared again.
            if (d.Generation is { } generation && now is { } current && current != generation)
            {
                HeldDrops++;
                continue;
            }
            // The engine's own last-moment rule: what a keypair sealed goes nowhere once that
            // keypair is zeroed (here: the notification cleared it while the datagram waited).
            if (d.Generation is not null && !SealedUnderLiveKeypair(d.Bytes))
                continue;
            _sim.Wire.Send(_endpoint, d.Bytes, d.To);
        }
    }

    private bool SealedUnderLiveKeypair(byte[] datagram)
    {
        if (datagram.Length < 8 || datagram[0] != 4 || Device.Peers.FirstOrDefault() is not Peer b)
            return true;
        uint index = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(datagram.AsSpan(4));
        foreach (Keypair? k in new[] { b.Keypairs.Previous, b.Keypairs.Current, b.Keypairs.Next })
        {
            if (k is { IsZeroed: false } && k.RemoteIndex == index)
                return true;
        }
        return false;
    }

    private NotifyResult OnPmEvent(NotifierBlock block, ulong action, object? data)
    {
        if ((PmEvent)action is PmEvent.PostVmFork or PmEvent.PostSuspend or PmEvent.PostHibernation
            && ResumedAt is not null && NotifiedAt is null)
            NotifiedAt = _ctx.Now;
        ScheduleFlush();
        return NotifyResult.Done;
    }

    void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to) =>
        _held.Add(new HeldDatagram(datagram.ToArray(), to, null));

    void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to, ulong generation) =>
        _held.Add(new HeldDatagram(datagram.ToArray(), to, generation));

    void IDeviceIo.DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from) => RepliesReceived++;

    public void Dispose()
    {
        _ctx.Kernel.Pm.Unregister(_pmBlock);
        Guard.Dispose();
        Device.Dispose();
    }
}

/// <summary>Peer A's part of a VM snapshot: the whole device, where its traffic counter was, and
/// the datagrams not yet on the wire.</summary>
internal sealed record PeerAState(TunnelDeviceState Device, uint NextSequence, HeldDatagram[] Held);

/// <summary>A datagram between the engine and the wire.</summary>
internal sealed record HeldDatagram(byte[] Bytes, Endpoint To, ulong? Generation);
