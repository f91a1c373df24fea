using ForkNotify;
using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>One step of a guest: a scheduled callback, replayable in a clone.</summary>
internal enum GuestStepKind { Send, Tick, Receive }

internal sealed record GuestStep(GuestStepKind Kind, byte[]? Datagram = null, Endpoint From = default);

/// <summary>
/// Peer A in an adversarial run: a device with a fork guard whose every observation of its
/// environment (pull counter, randomness, the network) goes through this object, so the run can
/// count them and, in a clone re-executing the source's step, switch the environment from the
/// source's to the clone's at exactly the chosen one. None of this touches the engine: the
/// counter, the randomness and the I/O are the host's, wrapped here.
/// </summary>
internal sealed class AdversarialGuest : IDeviceIo, IDisposable
{
    private readonly AdversarialSimulation _run;
    private readonly NotifierBlock? _gateOff;
    private readonly byte[] _packet = new byte[TrafficPacket.Size];
    private bool _counting;
    private int _observations;
    private int _flipAt; // 0: never (the source, or a clone once flipped)
    private bool _flipped;
    private ulong _counterValue;
    // Written into each packet: guest memory, so a clone re-executing the source's step builds the
    // source's packet; from its snapshot point on, a clone's own traffic differs (its own tag).
    private ushort _tag;

    public AdversarialGuest(AdversarialSimulation run, string name, int index, ulong counterValue, ModelEntropy entropy)
    {
        _run = run;
        Name = name;
        Index = index;
        _counterValue = counterValue;
        _tag = 0;
        Entropy = entropy;
        AdversarialScenario s = run.Scenario;
        Endpoint = run.Wire.Attach(name, run.Scheduler, (d, from) => Schedule(new GuestStep(GuestStepKind.Receive, d, from)));
        Kernel = new ForkKernel(BitConverter.GetBytes(run.Scenario.Seed ^ 0xa11ce), entropy: entropy);
        if (s.Entropy == HostEntropyModel.SharedUntilKernelReseed && s.HwRng)
            Kernel.CloneInput = new ModelHwRng(run.Scenario.Seed * 31 + (ulong)index);
        Counter = new ObservedCounter(this);
        Device = new TunnelDevice(new DeviceOptions
        {
            Clock = new SchedulerClock(run.Scheduler),
            Random = new ObservedRandom(this, Kernel.Random),
            Name = "wg0",
        }, this);
        bool hotPath = ForkGuardModes.NeedsPullCounter(s.Mode);
        Guard = new ForkGuard(Device, Kernel, s.Mode, hotPath ? Counter : null)
        {
            RequireCloneUniqueInput = !s.UniqueInputRuleOff,
        };
        // The fork path reads the counter in every mode (it carries the value in its notice).
        Kernel.PullCounter = Counter;
        Device.Fork.TwoReadsForTest = s.TwoReads;
        if (s.GateOff)
        {
            _gateOff = new NotifierBlock((_, _, _) =>
            {
                Device.Fork.ClearGate();
                return NotifyResult.Done;
            }, int.MinValue);
            Kernel.Pm.Register(_gateOff);
            Device.Fork.ClearGate();
        }
    }

    public string Name { get; }
    public int Index { get; }
    public Endpoint Endpoint { get; }
    public ForkKernel Kernel { get; }
    public ModelEntropy Entropy { get; }
    public ObservedCounter Counter { get; }
    public TunnelDevice Device { get; }
    public ForkGuard Guard { get; }
    public uint NextSequence { get; set; }
    public bool Destroyed { get; private set; }
    public bool IsClone => Index > 0;

    /// <summary>The counter the hypervisor shows this guest now.</summary>
    public ulong CounterValue => _counterValue;

    public void Configure()
    {
        Device.SetPrivateKey(_run.PrivateKeyA);
        Peer b = Device.AddPeer(_run.PublicKeyB);
        b.Endpoint = _run.PeerB.Endpoint;
        Device.AllowedIps.Insert(TrafficPacket.AddressB, 32, b);
    }

    /// <summary>A clone resumes from the source's captured memory.</summary>
    public void Restore(TunnelDeviceState device, ForkKernelState kernel, uint nextSequence)
    {
        Kernel.Restore(kernel);
        Device.RestoreState(device);
        NextSequence = nextSequence;
        if (_run.Scenario.GateOff)
            Device.Fork.ClearGate();
    }

    /// <summary>Starts the guest's own traffic and timers (boot, or a clone after its re-executed step).</summary>
    public void Start(TimeSpan firstSend)
    {
        _run.Scheduler.Schedule(firstSend, SendLoop);
        _run.Scheduler.Schedule(PeerAWorkload.TickInterval, TickLoop);
    }

    private void SendLoop()
    {
        if (Destroyed)
            return;
        Schedule(new GuestStep(GuestStepKind.Send));
        if (!Destroyed)
            _run.Scheduler.Schedule(_run.PacketInterval, SendLoop);
    }

    private void TickLoop()
    {
        if (Destroyed)
            return;
        Schedule(new GuestStep(GuestStepKind.Tick));
        if (!Destroyed)
            _run.Scheduler.Schedule(PeerAWorkload.TickInterval, TickLoop);
    }

    private void Schedule(GuestStep step)
    {
        if (Destroyed || _run.Intercepts(this, step))
            return;
        Execute(step, flipAt: 0);
    }

    /// <summary>Runs one step; in a clone, switches to the clone's environment at observation <paramref name="flipAt"/>.</summary>
    public int Execute(GuestStep step, int flipAt)
    {
        _observations = 0;
        _flipAt = flipAt;
        _counting = true;
        try
        {
            switch (step.Kind)
            {
                case GuestStepKind.Send:
                    TrafficPacket.Write(_packet, TrafficPacket.AddressA, TrafficPacket.AddressB, NextSequence++, _tag);
                    Device.SendPacket(_packet);
                    break;
                case GuestStepKind.Tick:
                    Device.Tick();
                    break;
                case GuestStepKind.Receive:
                    Device.ReceiveDatagram(step.Datagram!, step.From);
                    break;
            }
        }
        finally
        {
            _counting = false;
        }
        if (flipAt > 0 && !_flipped)
            Flip(); // fewer observations than the source had: cannot happen in a deterministic run
        return _observations;
    }

    /// <summary>Every environment observation comes here first.</summary>
    public void Observe(ForkPointKind kind)
    {
        if (!_counting)
            return;
        _observations++;
        _run.Observed(this, kind);
        if (_flipAt > 0 && _observations == _flipAt)
            Flip();
    }

    /// <summary>The snapshot point: from here on this clone lives in its own VM.</summary>
    private void Flip()
    {
        _flipped = true;
        _flipAt = 0;
        _counterValue++; // the hypervisor moved it before the clone's vCPUs ran
        _tag = (ushort)Index;
        AdversarialScenario s = _run.Scenario;
        Entropy.SwitchTo(s.Entropy == HostEntropyModel.PerGuest
            ? s.Seed * 1000 + (ulong)Index
            : s.Seed * 1000); // every sibling clone the same bytes
        _run.Scheduler.Schedule(s.NotifyDelay, Notify);
    }

    /// <summary>The clone's fork notification: vmgenid (a new ID) or, shared model, VMClock (the counter).</summary>
    private void Notify()
    {
        if (Destroyed)
            return;
        if (_run.Scenario.Entropy == HostEntropyModel.PerGuest)
        {
            byte[] id = new byte[16];
            BitConverter.TryWriteBytes(id, _run.Scenario.Seed * 7919 + (ulong)Index);
            Kernel.AddVmForkRandomness(id, idIsCloneUnique: true, "vmgenid");
        }
        else
        {
            Kernel.AddVmForkRandomness(VmForkId.ForGeneration("vmclock", _counterValue), idIsCloneUnique: false, "vmclock");
        }
    }

    public void Destroy() => Destroyed = true;

    void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to) => Send(datagram, to);

    void IDeviceIo.SendDatagram(ReadOnlySpan<byte> datagram, in Endpoint to, ulong generation) => Send(datagram, to);

    private void Send(ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        bool wasFlipped = _flipped;
        Observe(ForkPointKind.Transmit);
        if (IsClone && !_flipped)
        {
            // Before the snapshot point this is the source's own send: it left once.
            if (Index == 1)
                _run.SendAsSource(datagram, to);
            return;
        }
        // The snapshot fell inside this very send: the message was the source's, and every clone
        // completing the sendmsg is a replay of it, not randomness drawn twice.
        _run.Record(Name, datagram, madeBeforeSnapshot: IsClone && !wasFlipped);
        _run.Wire.Send(Endpoint, datagram, to);
    }


    void IDeviceIo.DeliverPacket(ReadOnlySpan<byte> ipPacket, Peer from) { }

    public void Dispose()
    {
        Destroyed = true;
        Guard.Dispose();
        Device.Dispose();
    }

    /// <summary>The pull counter as this guest sees it, each read an observation.</summary>
    internal sealed class ObservedCounter(AdversarialGuest guest) : IGenerationCounter
    {
        public ulong Read()
        {
            guest.Observe(ForkPointKind.CounterRead);
            return guest._counterValue;
        }
    }

    /// <summary>The engine's randomness (the guest kernel's generator), each draw an observation.</summary>
    private sealed class ObservedRandom(AdversarialGuest guest, IRandomGenerator inner) : IRandomGenerator
    {
        public void Fill(Span<byte> destination)
        {
            guest.Observe(ForkPointKind.RandomDraw);
            inner.Fill(destination);
        }
    }
}
