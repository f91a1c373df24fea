using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// Watches the kernel log (<c>/dev/kmsg</c>) for <c>random: crng reseeded due to virtual machine
/// fork</c>, which <c>add_vmfork_randomness()</c> prints on every kernel since 5.18 with the vmgenid
/// driver. Push model and racy (the line appears some time after vCPUs resumed), but it works where
/// nothing better exists. Only kernel-facility records count, and only those newer than
/// <see cref="Start"/>: everything already in the log when it starts (such as the line a machine
/// restored from a snapshot printed at boot) is history, counted in
/// <see cref="HistoricalForkLines"/> but never reported.
/// </summary>
/// <remarks>
/// Reading: <c>/dev/kmsg</c> hands out one record per <c>read()</c> and reports <c>EAGAIN</c> when
/// caught up (opened non-blocking) and <c>EPIPE</c> when the reader was overrun; a regular file in
/// the same format (tests) is read in chunks and split at newlines. Both are handled by splitting
/// at newlines; lines starting with a space are a record's dictionary continuation, skipped.
/// </remarks>
public sealed unsafe class KmsgSource : IForkSource
{
    /// <summary>The exact text <c>drivers/char/random.c</c> logs (with its <c>pr_fmt</c> prefix).</summary>
    public const string ForkLine = "random: crng reseeded due to virtual machine fork";

    private const int ReadSize = 8192; // the kernel refuses reads smaller than one record

    private readonly string _path;
    private readonly TimeSpan _pollInterval;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly SourceWatchThread _watch;
    private readonly StringBuilder _partial = new();
    private int _fd = -1;
    private ForkSourceAvailability? _availability;
    private ulong? _lastHistoricalSequence;

    public KmsgSource(string path = "/dev/kmsg", TimeSpan? pollInterval = null, ILogger? logger = null)
    {
        _path = path;
        _pollInterval = pollInterval ?? TimeSpan.FromMilliseconds(100);
        _logger = logger ?? NullLogger.Instance;
        _watch = new SourceWatchThread(Name, "kmsg watch", _logger);
    }

    public string Name => $"kmsg ({_path})";

    /// <summary>Fork lines from the kernel that were already in the log when <see cref="Start"/> ran.</summary>
    public int HistoricalForkLines { get; private set; }

    /// <summary>Records (any facility) that were already in the log when <see cref="Start"/> ran.</summary>
    public int HistoricalRecords { get; private set; }

    public ForkSourceAvailability Probe()
    {
        lock (_lock)
        {
            if (_availability is { IsAvailable: true } ok)
                return ok;
            _fd = LibC.Open(_path, LibC.O_RDONLY | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
            _availability = _fd >= 0
                ? ForkSourceAvailability.Available
                : ForkSourceAvailability.NotAvailable($"{_path}: {LibC.Describe(LibC.LastError)}");
            return _availability.Value;
        }
    }

    /// <summary>
    /// Reads the log as it is now (history, on the calling thread), then watches for new records on
    /// a background thread.
    /// </summary>
    public void Start(Action<ForkEvent> onFork)
    {
        ArgumentNullException.ThrowIfNull(onFork);
        Probe().ThrowIfUnavailable(Name);
        lock (_lock)
        {
            _watch.ThrowIfStarted(); // before reading: history is read once
            byte[] buffer = new byte[ReadSize];
            ReadAvailable(buffer, record =>
            {
                HistoricalRecords++;
                _lastHistoricalSequence = record.Sequence;
                if (IsForkRecord(record))
                    HistoricalForkLines++;
            });
            _watch.Start(wake => Watch(onFork, wake, buffer));
        }
    }

    private static bool IsForkRecord(in KmsgRecord record) =>
        record.FromKernel && string.Equals(record.Text, ForkLine, StringComparison.Ordinal);

    private void Watch(Action<ForkEvent> onFork, WakePipe wake, byte[] buffer)
    {
        int intervalMs = (int)Math.Max(1, _pollInterval.TotalMilliseconds);
        while (!wake.IsSignalled)
        {
            bool endOfFile = ReadAvailable(buffer, record =>
            {
                // A record at or before the last historical one is a repeat (the kernel restarts a
                // reader that fell behind at the oldest record it still holds): never report it.
                if (_lastHistoricalSequence is ulong last && record.Sequence <= last)
                    return;
                if (!IsForkRecord(record))
                    return;
                _watch.Deliver(onFork, new ForkEvent(Name, null, null, $"kmsg seq {record.Sequence} at {record.TimestampMicroseconds} us: {record.Text}",
                    record.Sequence));
            });
            if (wake.IsSignalled)
                break;
            // /dev/kmsg: poll() wakes on a new record. A regular file is always "readable", so at
            // its end we just wait an interval for it to grow.
            if (endOfFile)
                wake.Wait(-1, 0, intervalMs);
            else
                wake.Wait(_fd, LibC.POLLIN, intervalMs);
        }
    }

    /// <summary>Reads until caught up; returns true if it stopped at end-of-file (a regular file).</summary>
    private bool ReadAvailable(byte[] buffer, Action<KmsgRecord> onRecord)
    {
        while (true)
        {
            nint n;
            fixed (byte* data = buffer)
                n = LibC.Read(_fd, data, (nuint)buffer.Length);
            if (n == 0)
                return true;
            if (n < 0)
            {
                int errno = LibC.LastError;
                if (errno == LibC.EPIPE)
                    continue; // overrun: records were lost; the next read resumes at the oldest kept
                if (errno != LibC.EAGAIN && errno != LibC.EINTR)
                    _logger.LogWarning("{Source}: read: {Error}", Name, LibC.Describe(errno));
                return false;
            }
            _partial.Append(Encoding.UTF8.GetString(buffer, 0, (int)n));
            EmitLines(onRecord);
        }
    }

    private void EmitLines(Action<KmsgRecord> onRecord)
    {
        string text = _partial.ToString();
        int start = 0;
        while (true)
        {
            int newline = text.IndexOf('\n', start);
            if (newline < 0)
                break;
            string line = text[start..newline];
            start = newline + 1;
            if (line.Length == 0 || line[0] == ' ')
                continue; // dictionary continuation line
            if (KmsgRecord.TryParse(line, out KmsgRecord record))
                onRecord(record);
        }
        _partial.Clear().Append(text, start, text.Length - start);
    }

    public void Dispose()
    {
        _watch.Dispose(); // first: the thread must be gone before its device is closed
        lock (_lock)
        {
            if (_fd >= 0)
            {
                LibC.Close(_fd);
                _fd = -1;
            }
            _availability = null;
        }
    }
}
