using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// SysGenID (<c>/dev/sysgenid</c>; Amazon Linux microVM kernels, never merged upstream). Its
/// documented ABI (<c>Documentation/misc-devices/sysgenid.rst</c> in the v4..v8 patch series):
/// <c>read()</c> of at least 32 bits blocks until the counter differs from the one this fd last
/// acknowledged, then returns it as a native u32 (and keeps returning it until acknowledged);
/// <c>poll()</c> gives <c>POLLIN</c> meanwhile; <c>write()</c> of exactly 32 bits (the value read)
/// acknowledges. This source polls, reads, reports a changed value and acknowledges it.
/// </summary>
/// <remarks>
/// Stand-in for tests: no machine here has the device, so a test gives a FIFO as
/// <c>path</c> (the test writes each new u32 generation into it: a blocking read that returns the
/// counter) and a second FIFO as <c>ackPath</c> (where the acknowledgements land, since a single
/// FIFO would hand our own acks back to us). With the real device, leave <c>ackPath</c> null: the
/// acknowledgement goes to the device fd.
/// </remarks>
public sealed unsafe class SysGenIdSource : IForkSource
{
    private readonly string _path;
    private readonly string? _ackPath;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly SourceWatchThread _watch;
    private int _fd = -1;
    private int _ackFd = -1;
    private ForkSourceAvailability? _availability;
    private int _acknowledged;

    public SysGenIdSource(string path = "/dev/sysgenid", string? ackPath = null, ILogger? logger = null)
    {
        _path = path;
        _ackPath = ackPath;
        _logger = logger ?? NullLogger.Instance;
        _watch = new SourceWatchThread(Name, "sysgenid watch", _logger);
    }

    public string Name => $"sysgenid ({_path})";

    /// <summary>Number of generations acknowledged so far.</summary>
    public int Acknowledged => Volatile.Read(ref _acknowledged);

    public ForkSourceAvailability Probe()
    {
        lock (_lock)
        {
            if (_availability is { IsAvailable: true } ok)
                return ok;
            ForkSourceAvailability result = OpenDevice();
            _availability = result;
            if (!result.IsAvailable)
                CloseDevice();
            return result;
        }
    }

    private ForkSourceAvailability OpenDevice()
    {
        // O_RDWR: the device is read and acknowledged through one fd (and a FIFO opened O_RDWR
        // never blocks in open() nor reports end-of-file when its writer goes away).
        _fd = LibC.Open(_path, LibC.O_RDWR | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
        if (_fd < 0)
            return ForkSourceAvailability.NotAvailable($"{_path}: {LibC.Describe(LibC.LastError)}");
        if (_ackPath is not null)
        {
            _ackFd = LibC.Open(_ackPath, LibC.O_RDWR | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
            if (_ackFd < 0)
                return ForkSourceAvailability.NotAvailable($"{_ackPath}: {LibC.Describe(LibC.LastError)}");
        }
        return ForkSourceAvailability.Available;
    }

    public void Start(Action<ForkEvent> onFork)
    {
        ArgumentNullException.ThrowIfNull(onFork);
        Probe().ThrowIfUnavailable(Name);
        _watch.Start(wake => Watch(onFork, wake));
    }

    private void Watch(Action<ForkEvent> onFork, WakePipe wake)
    {
        uint? last = null;
        uint value = 0;
        while (!wake.IsSignalled)
        {
            short revents = wake.Wait(_fd, LibC.POLLIN, -1);
            if (wake.IsSignalled)
                break;
            if ((revents & LibC.POLLIN) == 0)
            {
                if ((revents & (LibC.POLLERR | LibC.POLLHUP | LibC.POLLNVAL)) != 0)
                {
                    _logger.LogError("{Source}: device error (revents 0x{Revents:x}); stopped", Name, revents);
                    return;
                }
                continue;
            }
            nint n = LibC.Read(_fd, &value, sizeof(uint));
            if (n != sizeof(uint))
            {
                int errno = n < 0 ? LibC.LastError : 0;
                if (n < 0 && errno is LibC.EAGAIN or LibC.EINTR)
                    continue;
                _logger.LogError("{Source}: read returned {N} ({Error}); stopped", Name, n, n < 0 ? LibC.Describe(errno) : "short read");
                return;
            }
            if (last != value)
            {
                last = value;
                _watch.Deliver(onFork, new ForkEvent(Name, value, null, $"sysgenid generation {value}"));
            }
            // Acknowledge after the handler ran: the device counts this fd as outdated until then.
            if (LibC.Write(_ackFd >= 0 ? _ackFd : _fd, &value, sizeof(uint)) == sizeof(uint))
                Interlocked.Increment(ref _acknowledged);
            else
                _logger.LogWarning("{Source}: acknowledging {Generation} failed: {Error}", Name, value, LibC.Describe(LibC.LastError));
        }
    }

    public void Dispose()
    {
        _watch.Dispose(); // first: the thread must be gone before its device is closed
        lock (_lock)
        {
            CloseDevice();
            _availability = null;
        }
    }

    private void CloseDevice()
    {
        if (_fd >= 0) { LibC.Close(_fd); _fd = -1; }
        if (_ackFd >= 0) { LibC.Close(_ackFd); _ackFd = -1; }
    }
}
