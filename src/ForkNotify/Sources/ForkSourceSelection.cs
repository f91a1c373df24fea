using Microsoft.Extensions.Logging;

namespace ForkNotify;

/// <summary>One source looked at while choosing: its kind, its name (with its path) and whether it can serve.</summary>
public sealed record ForkSourceCandidate(ForkSourceKind Kind, string Name, ForkSourceAvailability Availability)
{
    public override string ToString() => $"{ForkSourceKinds.Name(Kind)}: {Availability}";
}

/// <summary>
/// The outcome of <see cref="ForkSourceSelection.Choose"/>: the source to start (probed, not
/// started; the caller owns it), its pull counter if it has one, and every candidate looked at,
/// with the reason each was not taken.
/// </summary>
public sealed class ForkSourceChoice
{
    internal ForkSourceChoice(ForkSourceKind kind, IForkSource? source, IReadOnlyList<ForkSourceCandidate> candidates,
        bool automatic, string? failure)
    {
        Kind = kind;
        Source = source;
        Candidates = candidates;
        Automatic = automatic;
        Failure = failure;
    }

    /// <summary>The kind chosen (<see cref="ForkSourceKind.None"/> when nothing is usable).</summary>
    public ForkSourceKind Kind { get; }

    /// <summary>The probed source, ready for <see cref="IForkSource.Start"/>; null for none.</summary>
    public IForkSource? Source { get; }

    /// <summary>The source itself when it is a pull counter (vmgenid, VMClock), else null.</summary>
    public IGenerationCounter? PullCounter => Source as IGenerationCounter;

    /// <summary>Every source that was probed, in the order probed.</summary>
    public IReadOnlyList<ForkSourceCandidate> Candidates { get; }

    /// <summary>True when chosen by <c>auto</c>.</summary>
    public bool Automatic { get; }

    /// <summary>Why an explicitly requested source cannot be used (then <see cref="Source"/> is null).</summary>
    public string? Failure { get; }

    /// <summary>One line for the log: what was chosen and why the others were not.</summary>
    public string Describe()
    {
        string chosen = Source?.Name ?? "none";
        string how = Automatic ? "auto" : "requested";
        string counter = PullCounter is null ? "push notifications only" : "a pull counter";
        var others = Candidates.Where(c => c.Kind != Kind || Source is null).Select(c => c.ToString()).ToList();
        string rest = others.Count == 0 ? "" : $"; {string.Join("; ", others)}";
        return Source is null
            ? $"fork source ({how}): none{rest}"
            : $"fork source ({how}): {chosen}, {counter}{rest}";
    }
}

/// <summary>
/// Picks the host fork source. <c>auto</c> tries, best first:
/// <list type="number">
/// <item><b>vmgenid</b>: the hypervisor writes the new 16-byte ID into guest memory before the
/// clone's vCPUs run, and root can map that page, so it is a pull counter like vmclock; it comes
/// first because its ID is also clone-unique (two clones of one snapshot get different IDs, but
/// the same VMClock <c>vm_generation_counter</c>), the input a reseed needs. It needs root and a
/// kernel without lockdown; QEMU's vmclock device moves no generation counter at all.</item>
/// <item><b>vmclock</b>: the hypervisor moves <c>vm_generation_counter</c> before the clone's vCPUs
/// run, and the page is a pull counter, so a hot path can close the race altogether.</item>
/// <item><b>sysgenid</b>: a counter, but pushed (a blocking read) after the clone runs; only Amazon
/// Linux microVM kernels have it.</item>
/// <item><b>kmsg</b>: the line every kernel since 5.18 logs from <c>add_vmfork_randomness</c>, taken
/// only when the vmgenid driver is bound (without it the line never comes). It arrives after
/// the kernel has reseeded its own generator, later still than sysgenid, and carries no counter.</item>
/// <item><b>uevent</b>: <c>NEW_VMGENID=1</c>, sent by Linux 6.8 only, so taken only there; on any
/// other kernel the socket would open and stay silent for ever.</item>
/// </list>
/// Every candidate is probed (and the unchosen ones closed again) so the log says why each was not
/// taken. An explicitly requested source gets no such extra check: the user asked for it.
/// </summary>
public static class ForkSourceSelection
{
    /// <summary>The order <c>auto</c> tries.</summary>
    public static IReadOnlyList<ForkSourceKind> AutoOrder { get; } =
        [ForkSourceKind.VmGenId, ForkSourceKind.VmClock, ForkSourceKind.SysGenId, ForkSourceKind.Kmsg, ForkSourceKind.Uevent];

    /// <param name="requested">The source asked for, or null for <c>auto</c>.</param>
    /// <param name="paths">Where the devices are.</param>
    /// <param name="host">The running kernel (auto's extra checks); <see cref="HostKernel.Probe"/> by default.</param>
    /// <param name="logger">Given to the source that is created.</param>
    public static ForkSourceChoice Choose(ForkSourceKind? requested, ForkSourcePaths paths, HostKernel? host = null,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (requested is ForkSourceKind.None)
            return new ForkSourceChoice(ForkSourceKind.None, null, [], automatic: false, failure: null);
        if (requested is ForkSourceKind kind)
        {
            IForkSource source = Create(kind, paths, logger);
            ForkSourceAvailability availability = source.Probe();
            var candidate = new ForkSourceCandidate(kind, source.Name, availability);
            if (availability.IsAvailable)
                return new ForkSourceChoice(kind, source, [candidate], automatic: false, failure: null);
            source.Dispose();
            return new ForkSourceChoice(kind, null, [candidate], automatic: false, failure: $"{source.Name}: {availability}");
        }
        return ChooseAutomatically(paths, host ?? HostKernel.Probe(), logger);
    }

    private static ForkSourceChoice ChooseAutomatically(ForkSourcePaths paths, HostKernel host, ILogger? logger)
    {
        var candidates = new List<ForkSourceCandidate>();
        IForkSource? chosen = null;
        ForkSourceKind chosenKind = ForkSourceKind.None;
        foreach (ForkSourceKind kind in AutoOrder)
        {
            IForkSource source = Create(kind, paths, logger);
            ForkSourceAvailability availability = source.Probe();
            if (availability.IsAvailable)
                availability = UsefulHere(kind, host);
            if (availability.IsAvailable && chosen is null)
            {
                chosen = source;
                chosenKind = kind;
            }
            else
            {
                source.Dispose();
                if (availability.IsAvailable)
                    availability = ForkSourceAvailability.NotAvailable($"usable, but {ForkSourceKinds.Name(chosenKind)} comes first");
            }
            candidates.Add(new ForkSourceCandidate(kind, source.Name, availability));
        }
        return new ForkSourceChoice(chosenKind, chosen, candidates, automatic: true, failure: null);
    }

    /// <summary>auto's extra check: a source that opens may still never report a fork on this kernel.</summary>
    private static ForkSourceAvailability UsefulHere(ForkSourceKind kind, HostKernel host) => kind switch
    {
        ForkSourceKind.Kmsg when !host.HasVmGenIdDriver =>
            ForkSourceAvailability.NotAvailable("no vmgenid driver bound, so the kernel never logs a VM fork"),
        ForkSourceKind.Uevent when !host.HasVmGenIdDriver =>
            ForkSourceAvailability.NotAvailable("no vmgenid driver bound"),
        ForkSourceKind.Uevent when !host.SendsVmGenIdUevents =>
            ForkSourceAvailability.NotAvailable($"kernel {host.Release} sends no NEW_VMGENID uevent (only 6.8 did)"),
        _ => ForkSourceAvailability.Available,
    };

    private static IForkSource Create(ForkSourceKind kind, ForkSourcePaths paths, ILogger? logger) => kind switch
    {
        ForkSourceKind.VmClock => new VmClockSource(paths.VmClock, logger: logger),
        ForkSourceKind.SysGenId => new SysGenIdSource(paths.SysGenId, paths.SysGenIdAck, logger),
        ForkSourceKind.Kmsg => new KmsgSource(paths.Kmsg, logger: logger),
        ForkSourceKind.Uevent => new UeventSource(logger: logger),
        ForkSourceKind.VmGenId => new VmGenIdSource(paths.VmGenId, logger: logger),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };
}
