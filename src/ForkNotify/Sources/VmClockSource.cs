using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// The VMClock device (<c>/dev/vmclock0</c>, Linux <c>ptp_vmclock</c>): a page the hypervisor
/// updates before vCPUs resume, holding <c>vm_generation_counter</c> under a seqcount. The page is
/// mapped read-only, so <see cref="Read"/> is a true pull counter for a hot path (a few loads, no
/// syscall). As a push source it waits in <c>poll()</c> when the device advertises notifications,
/// else re-reads at an interval.
/// </summary>
public sealed unsafe class VmClockSource : IForkSource, IGenerationCounter
{
    /// <summary>What <see cref="Read"/> returns when the counter cannot be read consistently: it
    /// differs from every real generation, so a hot-path check fails safe and rekeys.</summary>
    public const ulong Unreadable = ulong.MaxValue;

    private readonly string _path;
    private readonly TimeSpan _pollInterval;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly SourceWatchThread _watch;
    private readonly ReadOnlyMapping _mapping = new();
    private byte* _page; // _mapping.Address, kept here for the hot path's one load
    private ForkSourceAvailability? _availability;

    public VmClockSource(string path = "/dev/vmclock0", TimeSpan? pollInterval = null, ILogger? logger = null)
    {
        _path = path;
        _pollInterval = pollInterval ?? TimeSpan.FromMilliseconds(100);
        _logger = logger ?? NullLogger.Instance;
        _watch = new SourceWatchThread(Name, "vmclock watch", _logger);
    }

    public string Name => $"vmclock ({_path})";

    /// <summary>The flags word of the last successful probe.</summary>
    public ulong Flags { get; private set; }

    /// <summary>
    /// Opens and maps the page, then checks the magic and <c>VM_GEN_COUNTER_PRESENT</c>. Idempotent
    /// once available; a failed probe leaves nothing open and may be retried.
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
        if (!_mapping.Open(_path, out int openErrno))
            return ForkSourceAvailability.NotAvailable($"{_path}: {LibC.Describe(openErrno)}");

        // read() first: it proves the first page holds a whole structure, so touching the mapping
        // can never fault past the end of a short file.
        byte* header = stackalloc byte[VmClockAbi.StructSize];
        nint n = LibC.PRead(_mapping.Fd, header, VmClockAbi.StructSize, 0);
        if (n < 0)
            return ForkSourceAvailability.NotAvailable($"{_path}: read: {LibC.Describe(LibC.LastError)}");
        if (n < VmClockAbi.StructSize)
            return ForkSourceAvailability.NotAvailable($"{_path}: only {n} bytes, not a vmclock_abi");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(header, 4));
        if (magic != VmClockAbi.Magic)
            return ForkSourceAvailability.NotAvailable($"{_path}: bad magic 0x{magic:x8}");

        if (!_mapping.Map(VmClockAbi.PageSize, 0, out int mapErrno))
            return ForkSourceAvailability.NotAvailable($"{_path}: mmap: {LibC.Describe(mapErrno)}");
        _page = _mapping.Address;

        if (!TryRead(out _, out ulong flags))
            return ForkSourceAvailability.NotAvailable($"{_path}: seq_count never settled (update stuck in progress)");
        Flags = flags;
        if ((flags & VmClockAbi.FlagVmGenCounterPresent) == 0)
            return ForkSourceAvailability.NotAvailable($"{_path}: VM_GEN_COUNTER_PRESENT not set (flags 0x{flags:x})");
        return ForkSourceAvailability.Available;
    }

    /// <summary>
    /// The generation counter, read under the seqcount; <see cref="Unreadable"/> if the source was
    /// not probed successfully or the seqcount did not settle within
    /// <see cref="VmClockAbi.SeqlockMaxRetries"/> attempts.
    /// </summary>
    public ulong Read() => TryReadGeneration(out ulong generation) ? generation : Unreadable;

    /// <summary>The generation counter under the seqcount protocol; false if torn or unavailable.</summary>
    public bool TryReadGeneration(out ulong generation) => TryRead(out generation, out _);

    private bool TryRead(out ulong generation, out ulong flags)
    {
        byte* page = _page;
        generation = 0;
        flags = 0;
        if (page == null)
            return false;
        ref uint seqCount = ref *(uint*)(page + VmClockAbi.SeqCountOffset);
        for (int attempt = 0; attempt < VmClockAbi.SeqlockMaxRetries; attempt++)
        {
            uint before = Volatile.Read(ref seqCount); // acquire: the data loads stay after it
            if ((before & 1) != 0)
            {
                Thread.SpinWait(1); // cpu_relax(): the hypervisor is mid-update
                continue;
            }
            ulong f = Volatile.Read(ref *(ulong*)(page + VmClockAbi.FlagsOffset));
            ulong g = Volatile.Read(ref *(ulong*)(page + VmClockAbi.VmGenerationCounterOffset));
            Interlocked.MemoryBarrier(); // smp_rmb(): the data loads complete before seq_count is re-read
            if (Volatile.Read(ref seqCount) == before)
            {
                flags = LittleEndian(f);
                generation = LittleEndian(g);
                return true;
            }
        }
        return false;
    }

    private static ulong LittleEndian(ulong value) =>
        BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value);

    public void Start(Action<ForkEvent> onFork)
    {
        ArgumentNullException.ThrowIfNull(onFork);
        Probe().ThrowIfUnavailable(Name);
        ulong baseline = Read(); // read here, not on the thread, so a change right after Start is seen
        _watch.Start(wake => Watch(onFork, wake, baseline));
    }

    private void Watch(Action<ForkEvent> onFork, WakePipe wake, ulong baseline)
    {
        int intervalMs = (int)Math.Max(1, _pollInterval.TotalMilliseconds);
        bool notifications = (Flags & VmClockAbi.FlagNotificationPresent) != 0;
        ulong last = baseline;
        byte* scratch = stackalloc byte[VmClockAbi.StructSize];
        while (!wake.IsSignalled)
        {
            bool woken = false;
            if (notifications)
            {
                short revents = wake.Wait(_mapping.Fd, LibC.POLLIN, intervalMs);
                if ((revents & (LibC.POLLHUP | LibC.POLLERR | LibC.POLLNVAL)) != 0)
                {
                    notifications = false; // the driver says it will not notify: fall back to polling
                    continue;
                }
                if ((revents & LibC.POLLIN) != 0)
                {
                    woken = true;
                    LibC.PRead(_mapping.Fd, scratch, VmClockAbi.StructSize, 0); // read() re-arms the driver's poll
                }
            }
            else
            {
                wake.Wait(-1, 0, intervalMs);
            }
            if (wake.IsSignalled)
                break;

            if (TryReadGeneration(out ulong generation) && generation != last)
            {
                last = generation;
                _watch.Deliver(onFork, new ForkEvent(Name, generation, null, $"vm_generation_counter {generation}"));
            }
            else if (woken)
            {
                // Readable without a new generation (a clock update, or a plain file that is always
                // readable): wait an interval so we never spin.
                wake.Wait(-1, 0, intervalMs);
            }
        }
    }

    public void Dispose()
    {
        _watch.Dispose(); // first: the thread must be gone before its device is closed
        lock (_lock)
        {
            Unmap();
            _availability = ForkSourceAvailability.NotAvailable("disposed");
        }
    }

    private void Unmap()
    {
        _page = null;
        _mapping.Close();
    }
}
