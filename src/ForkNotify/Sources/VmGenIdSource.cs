using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// The VM generation ID page, read from userspace: root maps the one page of physical memory
/// (<c>/dev/mem</c>) that holds the 16-byte ID the hypervisor rewrites on every restore or clone.
/// QEMU (<c>-device vmgenid</c>) and Firecracker write the new ID into guest memory before the
/// vCPUs run, so the first read after a resume already sees it; the ACPI notification that makes
/// Linux reseed (and log the line <see cref="KmsgSource"/> waits for) comes tens of milliseconds
/// later. That makes this a pull counter for the hot path on an unmodified hypervisor and kernel,
/// and its 16 bytes are the clone-unique input a reseed needs.
/// </summary>
/// <remarks>
/// <para>Where it cannot work, <see cref="Probe"/> says why: no address in the firmware tables (no
/// vmgenid device, see <see cref="VmGenIdLocation"/>), not root (the tables and /dev/mem are
/// root's), kernel lockdown (Secure Boot: <c>open</c> gives EPERM), or a kernel that refuses the
/// page (UEFI firmware puts the ID in ACPI NVS, which IO_STRICT_DEVMEM refuses unless the kernel
/// boots with <c>iomem=relaxed</c>).</para>
/// <para>Not used on purpose: <c>O_SYNC</c> (busybox <c>devmem</c>), which asks for an uncached
/// mapping that conflicts with the driver's write-back one (EAGAIN); and <c>pread</c> on /dev/mem,
/// which fails with EFAULT above the end of RAM.</para>
/// <para>As a pull counter (<see cref="Read"/>) it returns a generation, not the ID: 1 for the ID
/// seen at probe, one more for every different ID seen since. The check is four loads and two
/// compares; the ID itself (which may be secret) never leaves this class except as
/// <see cref="ForkEvent.VmId"/> into the fork path, and the UAPI's <c>fork_pull_counter</c> shows
/// only the small generation.</para>
/// <para>Push: nothing tells userspace of a new ID (Linux sends no uevent), so the watch thread
/// re-reads the mapped page every <c>pollInterval</c> (10 ms by default; a few loads per wake-up).</para>
/// </remarks>
public sealed unsafe class VmGenIdSource : IForkSource, IGenerationCounter
{
    /// <summary>What <see cref="Read"/> returns when the page is not mapped or never reads steady:
    /// it differs from every real generation, so a hot-path check fails safe and rekeys.</summary>
    public const ulong Unreadable = ulong.MaxValue;

    private const int SteadyReadAttempts = 1024;

    private readonly VmGenIdPaths _paths;
    private readonly TimeSpan _pollInterval;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly SourceWatchThread _watch;
    private readonly ReadOnlyMapping _mapping = new();
    private ulong* _id;
    private Seen? _seen;
    private ForkSourceAvailability? _availability;

    /// <summary>One ID and the generation it was given (replaced whole, so a reader never sees half of one).</summary>
    private sealed class Seen(ulong low, ulong high, ulong generation)
    {
        public readonly ulong Low = low;
        public readonly ulong High = high;
        public readonly ulong Generation = generation;
    }

    public VmGenIdSource(VmGenIdPaths? paths = null, TimeSpan? pollInterval = null, ILogger? logger = null)
    {
        _paths = paths ?? new VmGenIdPaths();
        _pollInterval = pollInterval ?? TimeSpan.FromMilliseconds(10);
        _logger = logger ?? NullLogger.Instance;
        _watch = new SourceWatchThread(Name, "vmgenid watch", _logger);
    }

    public string Name => $"vmgenid ({_paths.Memory})";

    /// <summary>Which table gave the address (after a successful probe), for the log.</summary>
    public string? Origin { get; private set; }

    /// <summary>
    /// Finds the address, opens physical memory and maps the ID's page. Idempotent once available;
    /// a failed probe leaves nothing open and may be retried.
    /// </summary>
    public ForkSourceAvailability Probe()
    {
        lock (_lock)
        {
            if (_availability is { IsAvailable: true } ok)
                return ok;
            ForkSourceAvailability result = Map();
            _availability = result;
            if (!result.IsAvailable)
                Unmap();
            return result;
        }
    }

    private ForkSourceAvailability Map()
    {
        if (!VmGenIdLocation.Find(_paths, out VmGenIdLocation location, out string reason))
            return ForkSourceAvailability.NotAvailable(LibC.IsRoot ? reason : $"{reason} (not root)");

        string memory = _paths.Memory;
        if (!_mapping.Open(memory, out int errno)) // never O_SYNC: see the remarks
        {
            return ForkSourceAvailability.NotAvailable(errno switch
            {
                LibC.EPERM => $"{memory}: {LibC.Describe(errno)}: kernel lockdown (Secure Boot) forbids /dev/mem",
                LibC.EACCES => $"{memory}: {LibC.Describe(errno)}: needs root (CAP_SYS_RAWIO)",
                LibC.ENOENT => $"{memory}: {LibC.Describe(errno)}: no /dev/mem (kernel without CONFIG_DEVMEM)",
                _ => $"{memory}: {LibC.Describe(errno)}",
            });
        }

        ulong pageSize = (ulong)Environment.SystemPageSize;
        ulong pageBase = location.Address & ~(pageSize - 1);
        // Usually one page; two when an 8-byte aligned ID starts in a page's last 8 bytes.
        ulong mapLength = (location.Address + VmGenIdLocation.IdLength - pageBase + pageSize - 1) & ~(pageSize - 1);
        // A regular file (a test's stand-in) must hold the whole mapping, or touching it faults;
        // the device itself has no end to seek to.
        long size = LibC.LSeek(_mapping.Fd, 0, LibC.SEEK_END);
        if (size >= 0 && (ulong)size < pageBase + mapLength)
            return ForkSourceAvailability.NotAvailable($"{memory}: {size} bytes, ends before the ID's page 0x{pageBase:x}");

        if (!_mapping.Map((nuint)mapLength, (long)pageBase, out errno))
        {
            return ForkSourceAvailability.NotAvailable(errno == LibC.EPERM
                ? $"{memory}: mmap of page 0x{pageBase:x} ({location.Origin}): {LibC.Describe(errno)}: the kernel refuses " +
                  "that page (STRICT_DEVMEM; under UEFI firmware the ID sits in ACPI NVS: boot with iomem=relaxed)"
                : $"{memory}: mmap of page 0x{pageBase:x} ({location.Origin}): {LibC.Describe(errno)}");
        }
        _id = (ulong*)(_mapping.Address + (location.Address - pageBase));

        if (!TryLoad(out ulong low, out ulong high))
            return ForkSourceAvailability.NotAvailable($"{memory}: the ID at {location.Origin} never read the same twice");
        if (low == 0 && high == 0)
            return ForkSourceAvailability.NotAvailable($"{memory}: the ID at {location.Origin} is all zeros (nothing written there)");
        Volatile.Write(ref _seen, new Seen(low, high, 1));
        Origin = location.Origin;
        return ForkSourceAvailability.Available;
    }

    /// <summary>
    /// The generation: 1 for the ID seen at probe, one more for every different ID since;
    /// <see cref="Unreadable"/> before a successful probe or if the page never reads steady.
    /// </summary>
    public ulong Read() => Current()?.Generation ?? Unreadable;

    /// <summary>The ID now and its generation (a new one for a new ID); null if unreadable.</summary>
    private Seen? Current()
    {
        Seen? seen = Volatile.Read(ref _seen);
        if (seen is null || !TryLoad(out ulong low, out ulong high))
            return null;
        if (low == seen.Low && high == seen.High)
            return seen;
        lock (_lock)
        {
            seen = _seen!;
            if (low == seen.Low && high == seen.High)
                return seen;
            var next = new Seen(low, high, seen.Generation + 1);
            Volatile.Write(ref _seen, next);
            return next;
        }
    }

    /// <summary>The two words of the ID, read twice until both reads agree; false if unmapped or
    /// never steady. QEMU and Firecracker write the ID while the vCPUs are stopped, so a real
    /// reader never races the writer; the second read only keeps a page caught mid-write (a test's
    /// writer) from counting, and a torn ID would at worst cost one extra rekey.</summary>
    private bool TryLoad(out ulong low, out ulong high)
    {
        ulong* id = _id;
        low = high = 0;
        if (id == null)
            return false;
        for (int attempt = 0; attempt < SteadyReadAttempts; attempt++)
        {
            ulong l = Volatile.Read(ref id[0]);
            ulong h = Volatile.Read(ref id[1]);
            if (Volatile.Read(ref id[0]) == l && Volatile.Read(ref id[1]) == h)
            {
                low = l;
                high = h;
                return true;
            }
            Thread.SpinWait(1);
        }
        return false;
    }

    public void Start(Action<ForkEvent> onFork)
    {
        ArgumentNullException.ThrowIfNull(onFork);
        Probe().ThrowIfUnavailable(Name);
        _watch.ThrowIfStarted();
        // Read here, not on the thread, so a change right after Start is seen.
        Seen baseline = Current() ?? Volatile.Read(ref _seen)!;
        _watch.Start(wake => Watch(onFork, wake, baseline));
    }

    private void Watch(Action<ForkEvent> onFork, WakePipe wake, Seen baseline)
    {
        int intervalMs = (int)Math.Max(1, _pollInterval.TotalMilliseconds);
        Seen last = baseline;
        while (!wake.IsSignalled)
        {
            Seen? now = Current();
            if (now is not null && now.Generation != last.Generation)
            {
                last = now;
                _watch.Deliver(onFork, new ForkEvent(Name, now.Generation, IdBytes(now),
                    $"VM generation ID changed, generation {now.Generation}"));
                // The seqlock's second read: the ID may have moved again while the handler ran, so
                // look once more before sleeping.
                continue;
            }
            wake.Wait(-1, 0, intervalMs);
        }
    }

    /// <summary>The 16 bytes as they are in guest memory (Microsoft's little-endian GUID layout).</summary>
    private static byte[] IdBytes(Seen seen)
    {
        var bytes = new byte[VmGenIdLocation.IdLength];
        Span<ulong> words = [seen.Low, seen.High];
        MemoryMarshal.AsBytes(words).CopyTo(bytes);
        return bytes;
    }

    public void Dispose()
    {
        _watch.Dispose(); // first: the thread must be gone before the page is unmapped
        lock (_lock)
        {
            Unmap();
            _availability = ForkSourceAvailability.NotAvailable("disposed");
        }
    }

    private void Unmap()
    {
        _id = null;
        Volatile.Write(ref _seen, null);
        _mapping.Close();
    }
}
