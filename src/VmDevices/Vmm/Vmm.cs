using ForkNotify;

namespace VmDevices;

/// <summary>
/// The hypervisor: boots guests, snapshots them, and restores or forks clones with fresh VM IDs and
/// chosen notification delays. In deterministic mode (<see cref="CreateDeterministic"/>) time is
/// virtual, events are ordered by a seeded scheduler, and every random choice of the host (VM IDs,
/// device entropy, kernel seeds) comes from the seed, so a scenario replays exactly; nothing runs on
/// another thread. Real-time mode (<see cref="CreateRealTime"/>) is for demos.
/// </summary>
public sealed class Vmm : IDisposable
{
    private readonly IRandomGenerator _entropy;
    private readonly DeterministicEntropy? _deterministicEntropy;
    private int _clones;

    private Vmm(IScheduler scheduler, DeterministicEntropy? entropy, ulong? seed)
    {
        Scheduler = scheduler;
        _deterministicEntropy = entropy;
        _entropy = entropy ?? (IRandomGenerator)OsRandomGenerator.Instance;
        Seed = seed;
        Trace = new SimulationTrace(scheduler);
    }

    public static Vmm CreateDeterministic(ulong seed) =>
        new(new DeterministicScheduler(seed), new DeterministicEntropy(seed ^ 0x766d6d2d686f7374UL), seed);

    public static Vmm CreateRealTime() => new(new RealTimeScheduler(), null, null);

    public ulong? Seed { get; }

    public bool IsDeterministic => Seed.HasValue;

    public IScheduler Scheduler { get; }

    public SimulationTrace Trace { get; }

    /// <summary>Boots a guest from <paramref name="config"/>.</summary>
    public Guest Boot(GuestConfig config, string name = "vm0")
    {
        lock (Scheduler.Gate)
        {
            byte[] id = config.VmGenIdGuid is { } text ? VmGenIdDevice.IdFromText(text, _entropy) : NewVmId();
            var guest = new Guest(name, isClone: false, config, Scheduler, Trace, NewKernel(), NewDeviceEntropy(), id);
            guest.Boot();
            return guest;
        }
    }

    /// <summary>
    /// Pauses <paramref name="guest"/>, copies all of its state, and (by default) signals the
    /// virtio-rng entropy leak to it afterwards, since it keeps running beside its copies.
    /// </summary>
    public VmSnapshot Snapshot(Guest guest, SnapshotOptions? options = null)
    {
        options ??= new SnapshotOptions();
        lock (Scheduler.Gate)
        {
            VmSnapshot s = guest.Capture(Scheduler.Now);
            Trace.Record(guest.Name, "snapshot taken");
            if (options.SignalLeakOnSave)
                guest.Rng?.SignalEntropyLeak(options.LeakOnSaveInterruptDelay);
            return s;
        }
    }

    /// <summary>Starts one clone from <paramref name="snapshot"/>.</summary>
    public Guest Restore(VmSnapshot snapshot, RestoreOptions? options = null)
    {
        options ??= new RestoreOptions();
        lock (Scheduler.Gate)
        {
            string name = options.Name ?? $"{snapshot.SourceName}.c{++_clones}";
            byte[] id = options.KeepVmGenerationId && snapshot.VmGenId is { } d ? d.Id
                : options.VmGenerationId ?? NewVmId();
            var guest = new Guest(name, isClone: true, snapshot.Config, Scheduler, Trace, NewKernel(), NewDeviceEntropy(), id);
            guest.RestoreFrom(snapshot, id, options);
            return guest;
        }
    }

    /// <summary>Starts <paramref name="count"/> clones, each with a fresh ID.</summary>
    public IReadOnlyList<Guest> Fork(VmSnapshot snapshot, int count, RestoreOptions? options = null) =>
        Fork(snapshot, count, _ => options ?? new RestoreOptions());

    /// <summary>Starts <paramref name="count"/> clones with per-clone options (e.g. different delays).</summary>
    public IReadOnlyList<Guest> Fork(VmSnapshot snapshot, int count, Func<int, RestoreOptions> options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var clones = new Guest[count];
        for (int i = 0; i < count; i++)
            clones[i] = Restore(snapshot, options(i));
        return clones;
    }

    /// <summary>A fresh 16-byte VM generation ID (seeded in deterministic mode).</summary>
    public byte[] NewVmId()
    {
        var id = new byte[VmGenIdDevice.IdSize];
        _entropy.Fill(id);
        return id;
    }

    /// <summary>Runs the deterministic scheduler until nothing is pending.</summary>
    public int RunUntilIdle(int maxEvents = 1_000_000) => Deterministic.RunUntilIdle(maxEvents);

    /// <summary>Advances virtual time by <paramref name="duration"/>, running what falls due.</summary>
    public void RunFor(TimeSpan duration) => Deterministic.RunFor(duration);

    public void Dispose() => (Scheduler as IDisposable)?.Dispose();

    private DeterministicScheduler Deterministic =>
        Scheduler as DeterministicScheduler ?? throw new InvalidOperationException("only in deterministic mode");

    private ForkKernel NewKernel()
    {
        if (_deterministicEntropy is null)
            return new ForkKernel();
        Span<byte> seed = stackalloc byte[32];
        _deterministicEntropy.Fill(seed);
        // The kernel's "fresh OS entropy" on fork comes from the seed too, so clones replay.
        return new ForkKernel(seed, entropy: new DeterministicEntropy(_deterministicEntropy.NextUInt64()));
    }

    private IRandomGenerator NewDeviceEntropy() =>
        _deterministicEntropy is null ? OsRandomGenerator.Instance : new DeterministicEntropy(_deterministicEntropy.NextUInt64());
}
