using System.Security.Cryptography;
using ForkNotify;
using Tunnel.Crypto;
using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>
/// The adversarial fork simulation of issue 14: the snapshot may land at any point where the
/// engine observes its environment (a pull-counter read, a random draw, a datagram handed to the
/// network), not only between scheduler events.
/// </summary>
/// <remarks>
/// A snapshot inside a step cannot be resumed in C# mid-call, so each clone re-executes the
/// source's step from the memory captured before it, and the run switches that clone's
/// environment (counter moved by the hypervisor, its own host entropy, its own notification) at
/// the chosen observation. The engine is deterministic given its inputs, so up to that point the
/// clone does exactly what the source did (its sends before the point left once, from the
/// source); from it on, the clone is a clone. A snapshot between two observations (a seal, a
/// keypair derivation) leaves the same state as one at the next observation, since nothing in
/// between reads anything that differs between clones; so these points are all the points.
/// </remarks>
public sealed class AdversarialSimulation : IDisposable
{
    private readonly List<AdversarialGuest> _guests = [];
    private readonly PeerKeys _keys;
    private readonly AdversarialGuest _source;
    private readonly ForkPointId? _point;
    private readonly List<ForkPointId>? _enumerated;
    private readonly Dictionary<string, byte[]> _ephemerals = [];
    private readonly Dictionary<uint, byte[]> _senderIndexes = [];
    private readonly Dictionary<string, string> _messages = []; // message -> first sender
    private int _sourceSteps;
    private int _sourceSends;
    private int _identicalEphemerals;
    private int _identicalIndexes;
    private int _identicalCopies;
    private bool _forked;

    private AdversarialSimulation(AdversarialScenario scenario, ForkPointId? point, bool enumerate)
    {
        Scenario = scenario;
        _point = point;
        _enumerated = enumerate ? [] : null;
        PacketInterval = TimeSpan.FromTicks((long)(TimeSpan.TicksPerSecond / scenario.PacketsPerSecond));
        Scheduler = new DeterministicScheduler(scenario.Seed);
        Observer = new WireObserver();
        Wire = new Wire(Scheduler, TimeSpan.FromMilliseconds(1), Observer);

        _keys = new PeerKeys(scenario.Seed ^ 0x616476657273UL);
        PeerB = new PeerBHost(Scheduler, Wire, _keys.PrivateKeyB, _keys.PublicKeyA, scenario.Seed ^ 0x62UL);
        Observer.PeerB = PeerB.Endpoint;

        _source = new AdversarialGuest(this, "vm0", 0, counterValue: 100, new ModelEntropy(scenario.Seed * 1000 + 999));
        _guests.Add(_source);
        _source.Configure();
        if (scenario.Entropy == HostEntropyModel.SharedUntilKernelReseed)
            _source.Kernel.SetBootVmId(VmForkId.ForGeneration("vmclock", _source.CounterValue));
        _source.Start(PacketInterval);
    }

    public AdversarialScenario Scenario { get; }
    internal DeterministicScheduler Scheduler { get; }
    internal WireObserver Observer { get; }
    internal Wire Wire { get; }
    internal PeerBHost PeerB { get; }
    internal byte[] PrivateKeyA => _keys.PrivateKeyA;
    internal byte[] PublicKeyB => _keys.PublicKeyB;
    internal TimeSpan PacketInterval { get; }

    /// <summary>Every snapshot point of the scenario's run: the source's observations in its steps up
    /// to (and including) its <see cref="AdversarialScenario.Packets"/>-th send.</summary>
    public static IReadOnlyList<ForkPointId> EnumeratePoints(AdversarialScenario scenario)
    {
        using var sim = new AdversarialSimulation(scenario, point: null, enumerate: true);
        TimeSpan giveUp = TimeSpan.FromTicks(sim.PacketInterval.Ticks * (scenario.Packets + 5));
        while (sim._sourceSends <= scenario.Packets && sim.Scheduler.Now < giveUp)
            sim.Scheduler.RunOne();
        return sim._enumerated!;
    }

    /// <summary>Runs the scenario with the snapshot at <paramref name="point"/>.</summary>
    public static AdversarialResult Run(AdversarialScenario scenario, ForkPointId point)
    {
        using var sim = new AdversarialSimulation(scenario, point, enumerate: false);
        TimeSpan giveUp = TimeSpan.FromTicks(sim.PacketInterval.Ticks * (scenario.Packets + 10));
        while (!sim._forked && sim.Scheduler.Now < giveUp)
            sim.Scheduler.RunOne();
        if (!sim._forked)
            throw new InvalidOperationException($"the snapshot point was never reached: {point} in {scenario}");
        sim.Scheduler.RunFor(scenario.NotifyDelay + scenario.RunAfterNotify);
        int withNewKeys = 0;
        foreach (AdversarialGuest g in sim._guests)
        {
            if (g.IsClone && sim.Observer.StatsOf(g.Name).FirstNewKeyPacketAt is not null)
                withNewKeys++;
        }
        return new AdversarialResult
        {
            Point = point,
            ReusedPairs = sim.Observer.ReusedPairs,
            IdenticalEphemerals = sim._identicalEphemerals,
            IdenticalIndexes = sim._identicalIndexes,
            IdenticalCopies = sim._identicalCopies,
            ClonesWithNewKeys = withNewKeys,
        };
    }

    /// <summary>Whether the run takes over the source's step (the snapshot falls inside it).</summary>
    internal bool Intercepts(AdversarialGuest guest, GuestStep step)
    {
        if (guest != _source)
            return false;
        int index = ++_sourceSteps;
        if (step.Kind == GuestStepKind.Send)
            _sourceSends++;
        if (_point is not { } point || point.Step != index)
            return false;
        Fork(step, point);
        return true;
    }

    internal void Observed(AdversarialGuest guest, ForkPointKind kind)
    {
        if (_enumerated is not null && guest == _source && _sourceSends <= Scenario.Packets)
            _enumerated.Add(new ForkPointId(_sourceSteps, CountInStep(_sourceSteps) + 1, kind));
    }

    private int CountInStep(int step)
    {
        int n = 0;
        for (int i = _enumerated!.Count - 1; i >= 0 && _enumerated[i].Step == step; i--)
            n++;
        return n;
    }

    private void Fork(GuestStep step, ForkPointId point)
    {
        _forked = true;
        Observer.MarkEvent(Scheduler.Now);
        using TunnelDeviceState device = _source.Device.CaptureState();
        ForkKernelState kernel = _source.Kernel.Capture();
        uint sequence = _source.NextSequence;
        _source.Destroy();
        for (int i = 1; i <= Scenario.Clones; i++)
        {
            var clone = new AdversarialGuest(this, $"clone{i}", i, _source.CounterValue, _source.Entropy.Fork());
            _guests.Add(clone);
            clone.Restore(device, kernel, sequence);
            clone.Execute(step, point.Observation);
            clone.Start(PacketInterval);
        }
        kernel.Random.Clear();
    }

    /// <summary>A send that, before the snapshot point, was the source's (it left once).</summary>
    internal void SendAsSource(ReadOnlySpan<byte> datagram, in Endpoint to)
    {
        Record(_source.Name, datagram, madeBeforeSnapshot: true);
        Wire.Send(_source.Endpoint, datagram, to);
    }

    /// <summary>
    /// Judges A's handshake messages: an ephemeral or a sender index in two different messages, or
    /// one message made after the snapshot by two guests, is randomness drawn twice. A copy of a
    /// message the source made (the snapshot inside its sendmsg) is a replay, counted apart.
    /// </summary>
    internal void Record(string sender, ReadOnlySpan<byte> datagram, bool madeBeforeSnapshot)
    {
        string hex = Convert.ToHexString(datagram);
        if (_messages.TryGetValue(hex, out string? first))
        {
            if (madeBeforeSnapshot || first == sender || MessageHeader.ReadType(datagram) is not (MessageType.Initiation or MessageType.Response))
            {
                _identicalCopies++;
                return;
            }
        }
        else
        {
            _messages[hex] = sender;
        }
        uint index;
        switch (MessageHeader.ReadType(datagram))
        {
            case MessageType.Initiation when MessageInitiation.IsWellFormed(datagram):
                string ephemeral = Convert.ToHexString(datagram.Slice(MessageInitiation.EphemeralOffset, 32));
                if (!_ephemerals.TryAdd(ephemeral, datagram.ToArray()))
                    _identicalEphemerals++;
                index = MessageInitiation.SenderIndex(datagram);
                break;
            case MessageType.Response when MessageResponse.IsWellFormed(datagram):
                index = MessageResponse.SenderIndex(datagram);
                break;
            default:
                return;
        }
        if (!_senderIndexes.TryAdd(index, datagram.ToArray()))
            _identicalIndexes++;
    }

    public void Dispose()
    {
        foreach (AdversarialGuest g in _guests)
            g.Dispose();
        PeerB.Dispose();
        Wire.Dispose();
        _keys.Dispose();
    }
}
