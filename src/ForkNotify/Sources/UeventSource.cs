using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace ForkNotify;

/// <summary>
/// Listens on <c>NETLINK_KOBJECT_UEVENT</c> (protocol 15), multicast group 1 (the kernel's own
/// events), for the vmgenid driver's <c>change</c> event with <c>NEW_VMGENID=1</c>. Only Linux 6.8
/// sent it (the patch was reverted), so on most kernels this source is available but silent.
/// Only messages from port id 0 (the kernel) count: any root process can multicast a forged uevent
/// in its network namespace. A test may name one more sender port it trusts.
/// </summary>
/// <remarks>
/// The socket is created and bound by <see cref="Probe"/>, in the network namespace of the calling
/// thread; a test uses that to listen inside a namespace of its own.
/// </remarks>
public sealed unsafe class UeventSource : IForkSource
{
    private const int ReceiveBufferSize = 16384;
    /// <summary>Kernel multicast group of <c>NETLINK_KOBJECT_UEVENT</c> (udev's is 2).</summary>
    public const uint KernelGroup = 1;

    private readonly uint? _allowedSenderPortId;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private readonly SourceWatchThread _watch;
    private int _socket = -1;
    private ForkSourceAvailability? _availability;
    private int _rejectedSenders;
    private int _ignoredEvents;

    /// <param name="allowedSenderPortId">TEST OPTION: a non-kernel sender port id whose messages are
    /// accepted too. Leave null in production.</param>
    public UeventSource(uint? allowedSenderPortId = null, ILogger? logger = null)
    {
        _allowedSenderPortId = allowedSenderPortId;
        _logger = logger ?? NullLogger.Instance;
        _watch = new SourceWatchThread(Name, "uevent listen", _logger);
    }

    public string Name => "uevent (NETLINK_KOBJECT_UEVENT group 1)";

    /// <summary>Messages dropped because they came from a port other than the kernel's (or the allowed one).</summary>
    public int RejectedSenders => Volatile.Read(ref _rejectedSenders);

    /// <summary>Kernel uevents received that were not a vmgenid change.</summary>
    public int IgnoredEvents => Volatile.Read(ref _ignoredEvents);

    public ForkSourceAvailability Probe()
    {
        lock (_lock)
        {
            if (_availability is { IsAvailable: true } ok)
                return ok;
            ForkSourceAvailability result = OpenSocket();
            _availability = result;
            if (!result.IsAvailable)
                CloseSocket();
            return result;
        }
    }

    private ForkSourceAvailability OpenSocket()
    {
        _socket = LibC.Socket(LibC.AF_NETLINK, LibC.SOCK_DGRAM | LibC.SOCK_CLOEXEC, LibC.NETLINK_KOBJECT_UEVENT);
        if (_socket < 0)
            return ForkSourceAvailability.NotAvailable($"socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT): {LibC.Describe(LibC.LastError)}");
        var address = new LibC.SockAddrNetlink { Family = LibC.AF_NETLINK, PortId = 0, Groups = KernelGroup };
        if (LibC.Bind(_socket, &address, (uint)sizeof(LibC.SockAddrNetlink)) != 0)
            return ForkSourceAvailability.NotAvailable($"bind(nl_groups=1): {LibC.Describe(LibC.LastError)}");
        return ForkSourceAvailability.Available;
    }

    public void Start(Action<ForkEvent> onFork)
    {
        ArgumentNullException.ThrowIfNull(onFork);
        Probe().ThrowIfUnavailable(Name);
        _watch.Start(wake => Listen(onFork, wake));
    }

    private void Listen(Action<ForkEvent> onFork, WakePipe wake)
    {
        byte[] buffer = GC.AllocateArray<byte>(ReceiveBufferSize, pinned: true);
        while (!wake.IsSignalled)
        {
            short revents = wake.Wait(_socket, LibC.POLLIN, -1);
            if (wake.IsSignalled)
                break;
            if ((revents & LibC.POLLIN) == 0)
                continue;
            if (!Receive(buffer, out int length, out uint senderPortId))
                continue;
            if (senderPortId != 0 && senderPortId != _allowedSenderPortId)
            {
                Interlocked.Increment(ref _rejectedSenders);
                continue;
            }
            if (!UeventMessage.TryParse(buffer.AsSpan(0, length), out UeventMessage? message) || !message!.IsVmGenIdChange)
            {
                Interlocked.Increment(ref _ignoredEvents);
                continue;
            }
            _watch.Deliver(onFork, new ForkEvent(Name, null, null, message.ToString(), message.SequenceNumber));
        }
    }

    // recvmsg() with a sockaddr_nl as msg_name: the kernel fills in the sender's port id.
    private bool Receive(byte[] buffer, out int length, out uint senderPortId)
    {
        length = 0;
        senderPortId = uint.MaxValue;
        LibC.SockAddrNetlink sender = default;
        fixed (byte* data = buffer)
        {
            var iov = new LibC.IoVec { Base = data, Length = (nuint)buffer.Length };
            var header = new LibC.MsgHdr
            {
                Name = &sender,
                NameLength = (uint)sizeof(LibC.SockAddrNetlink),
                Iov = &iov,
                IovLength = 1,
            };
            nint n = LibC.RecvMsg(_socket, &header, 0);
            if (n < 0)
            {
                int errno = LibC.LastError;
                if (errno is not (LibC.EAGAIN or LibC.EINTR))
                    _logger.LogWarning("{Source}: recvmsg: {Error}", Name, LibC.Describe(errno)); // e.g. ENOBUFS: events were lost
                return false;
            }
            if ((header.Flags & LibC.MSG_TRUNC) != 0 || header.NameLength < sizeof(LibC.SockAddrNetlink) || sender.Family != LibC.AF_NETLINK)
                return false;
            length = (int)n;
            senderPortId = sender.PortId;
            return true;
        }
    }

    public void Dispose()
    {
        _watch.Dispose(); // first: the thread must be gone before its device is closed
        lock (_lock)
        {
            CloseSocket();
            _availability = null;
        }
    }

    private void CloseSocket()
    {
        if (_socket >= 0)
        {
            LibC.Close(_socket);
            _socket = -1;
        }
    }
}
