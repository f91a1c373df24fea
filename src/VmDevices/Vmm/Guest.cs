using ForkNotify;

namespace VmDevices;

/// <summary>
/// One virtual machine: its memory, its devices and their guest drivers, its kernel fork-safety
/// state (<see cref="ForkKernel"/>) and its workloads. Built by <see cref="Vmm"/>, either booted or
/// restored from a <see cref="VmSnapshot"/>.
/// </summary>
public sealed class Guest
{
    private readonly List<IGuestWorkload> _workloads = new();
    private volatile bool _running;

    internal Guest(string name, bool isClone, GuestConfig config, IScheduler host, SimulationTrace trace,
        ForkKernel kernel, IRandomGenerator deviceEntropy, ReadOnlySpan<byte> vmGenId)
    {
        Name = name;
        IsClone = isClone;
        Config = config;
        Trace = trace;
        Kernel = kernel;
        Scheduler = new GuestScheduler(host, () => _running);
        Memory = new GuestMemory(config.MemorySize);
        Heap = new GuestHeap(Memory, GuestConfig.HeapStart, Memory.Size);
        if (config.VmGenId)
        {
            var notify = new InterruptLine($"{name} vmgenid", Scheduler);
            VmGenId = new VmGenIdDevice(Memory, notify, GuestConfig.VmGenIdBlobAddress, config.VmGenIdCounter, vmGenId, trace);
            VmGenIdDriver = new VmGenIdDriver(kernel, Memory, VmGenId, trace);
        }
        if (config.VirtioRng)
        {
            RngInterrupt = new InterruptLine($"{name} virtio-rng", Scheduler);
            Rng = new VirtioRngDevice(Memory, RngInterrupt, deviceEntropy, offerLeak: config.OfferEntropyLeak, trace: trace);
            RngDriver = new VirtioRngDriver(kernel, Memory, Rng, RngInterrupt, trace);
        }
    }

    public string Name { get; }

    public bool IsClone { get; }

    public GuestConfig Config { get; }

    public GuestMemory Memory { get; }

    public GuestHeap Heap { get; }

    public ForkKernel Kernel { get; }

    /// <summary>Guest-scoped scheduler (events die with the guest).</summary>
    public IScheduler Scheduler { get; }

    public SimulationTrace Trace { get; }

    public VmGenIdDevice? VmGenId { get; }

    public VmGenIdDriver? VmGenIdDriver { get; }

    public VirtioRngDevice? Rng { get; }

    public VirtioRngDriver? RngDriver { get; }

    public InterruptLine? RngInterrupt { get; }

    public GuestContext Context { get; private set; } = null!;

    public IReadOnlyList<IGuestWorkload> Workloads => _workloads;

    public bool IsRunning => _running;

    /// <summary>Stops the guest for good: its pending events become no-ops.</summary>
    public void Destroy()
    {
        _running = false;
        Trace.Record(Name, "destroyed");
    }

    /// <summary>Firmware and kernel boot: drivers probe, workloads are created, vCPUs run.</summary>
    internal void Boot()
    {
        VmGenIdDriver?.Probe();
        RngDriver?.Probe(Heap, Config.RngQueueSize);
        CreateContext();
        foreach (var factory in Config.Workloads)
            _workloads.Add(factory(Context));
        Trace.Record(Name, "booted");
        Resume();
    }

    internal VmSnapshot Capture(TimeSpan now) =>
        new(Name, now, Config, Memory.Capture(), Heap.Next, Kernel.Capture(),
            VmGenId?.Capture(), VmGenIdDriver?.Capture(), Rng?.Capture(), RngDriver?.Capture(),
            VmGenId?.NotifyLine.CapturePending() ?? [], RngInterrupt?.CapturePending() ?? [],
            _workloads.Select(w => w.CaptureState()).ToArray());

    /// <summary>
    /// Loads <paramref name="s"/> with vCPUs paused, lets the devices do their post-load work
    /// (new ID and counter, leak-queue completion: all in memory before the guest runs), then resumes.
    /// </summary>
    internal void RestoreFrom(VmSnapshot s, ReadOnlySpan<byte> newVmId, RestoreOptions options)
    {
        Memory.Restore(s.Memory);
        Heap.Restore(s.HeapNext);
        Kernel.Restore(s.Kernel);
        if (s.VmGenId is { } gd) VmGenId?.Restore(gd);
        if (s.VmGenIdDriver is { } gdr) VmGenIdDriver?.Restore(gdr);
        if (s.Rng is { } rd) Rng?.Restore(rd);
        if (s.RngDriver is { } rdr) RngDriver?.Restore(rdr);
        VmGenId?.NotifyLine.RestorePending(s.PendingVmGenIdNotify, TimeSpan.Zero);
        RngInterrupt?.RestorePending(s.PendingRngInterrupts, TimeSpan.Zero);
        CreateContext();
        for (int i = 0; i < Config.Workloads.Count; i++)
        {
            var w = Config.Workloads[i](Context);
            w.RestoreState(s.WorkloadStates[i]);
            _workloads.Add(w);
        }
        Trace.Record(Name, $"restored from {s.SourceName}");
        VmGenId?.PostLoad(newVmId, options.VmGenIdNotifyDelay, options.DeliverVmGenIdNotify);
        if (options.SignalEntropyLeak)
            Rng?.SignalEntropyLeak(options.LeakInterruptDelay);
        Resume();
    }

    private void CreateContext() =>
        Context = new GuestContext(Name, IsClone, Kernel, Scheduler, Trace,
            VmGenIdDriver?.GenerationCounter, RngDriver?.LeakGeneration);

    private void Resume()
    {
        _running = true;
        Trace.Record(Name, "running");
        foreach (var w in _workloads)
            Scheduler.Schedule(TimeSpan.Zero, w.OnResume);
    }
}
