using System.Runtime.InteropServices;
using System.Text;

namespace Tunnel.Transport;

/// <summary>
/// A Linux TUN device (<c>/dev/net/tun</c>, IFF_TUN | IFF_NO_PI: each read or write is exactly
/// one IP packet, no header). Reads and writes go straight between the caller's buffer and the
/// file descriptor: nothing is allocated per packet. The descriptor is non-blocking and reads wait
/// in poll() next to an eventfd, so <see cref="Dispose"/> can wake a blocked reader (closing a
/// descriptor under a blocked read() does not). The interface is not persistent: the kernel
/// deletes it when the descriptor closes, so a crash never leaves it behind.
/// <para>Created with <c>offload: true</c> it also asks for IFF_VNET_HDR and TSO (TUNSETOFFLOAD), as
/// wireguard-go does: the kernel's TCP then hands over up to 64 KiB per read instead of one MTU,
/// which saves most of the per-packet cost on both sides of the read. Every read then starts with a
/// <see cref="VirtioNetHeader"/> (cut the packet up with <see cref="TsoSegments"/>), and
/// <see cref="Write"/> puts an empty one in front of each packet.</para>
/// </summary>
public sealed unsafe class LinuxTun : IDisposable, ITunWriter
{
    private int _fd;
    private int _wake;
    private int _users;
    private volatile bool _closed;

    private LinuxTun(int fd, int wake, string name, bool vnetHeader)
    {
        _fd = fd;
        _wake = wake;
        Name = name;
        HasVnetHeader = vnetHeader;
    }

    /// <summary>True when reads start with a <see cref="VirtioNetHeader"/> (offload was granted).</summary>
    public bool HasVnetHeader { get; }

    /// <summary>The interface name the kernel gave (the requested one, or tunN for a pattern).</summary>
    public string Name { get; }

    /// <summary>Creates the device. Throws <see cref="TunException"/> with a user-facing message.</summary>
    public static LinuxTun Create(string name, bool offload = false)
    {
        if (!OperatingSystem.IsLinux())
            throw new TunException("TUN devices are only supported on Linux");
        var nameBytes = Encoding.ASCII.GetBytes(name);
        if (nameBytes.Length is 0 or >= LibC.IFNAMSIZ)
            throw new TunException($"interface name '{name}' must be 1-15 characters");

        var fd = LibC.Open("/dev/net/tun", LibC.O_RDWR | LibC.O_NONBLOCK | LibC.O_CLOEXEC);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno switch
            {
                LibC.ENOENT or LibC.ENODEV or LibC.ENXIO => new TunException(
                    "/dev/net/tun is missing: the kernel needs CONFIG_TUN (modprobe tun), and a container needs the device passed in (--device /dev/net/tun)", true),
                LibC.EACCES or LibC.EPERM => new TunException(
                    "cannot open /dev/net/tun: run as root or with CAP_NET_ADMIN", true),
                _ => new TunException($"cannot open /dev/net/tun: {LibC.Describe(errno)}"),
            };
        }

        LibC.IfReq request = default;
        for (var i = 0; i < nameBytes.Length; i++)
            request.Name[i] = nameBytes[i];
        request.Flags = (short)(LibC.IFF_TUN | LibC.IFF_NO_PI | (offload ? LibC.IFF_VNET_HDR : 0));
        if (LibC.Ioctl(fd, LibC.TUNSETIFF, &request) < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            LibC.Close(fd);
            throw errno switch
            {
                LibC.EPERM or LibC.EACCES => new TunException(
                    $"cannot create interface {name}: run as root or with CAP_NET_ADMIN", true),
                LibC.EBUSY or LibC.EINVAL => new TunException(
                    $"cannot create interface {name}: a device of that name already exists ({LibC.Describe(errno)})"),
                _ => new TunException($"cannot create interface {name}: {LibC.Describe(errno)}"),
            };
        }
        var actual = Encoding.ASCII.GetString(new ReadOnlySpan<byte>(request.Name, LibC.IFNAMSIZ)).TrimEnd('\0');

        // TSO needs checksum offload with it. A kernel that refuses keeps the virtio-net header
        // (always "nothing to do" then), which costs a few bytes per packet and nothing else.
        if (offload)
            LibC.IoctlValue(fd, LibC.TUNSETOFFLOAD,
                LibC.TUN_F_CSUM | LibC.TUN_F_TSO4 | LibC.TUN_F_TSO6);
        return WithWakeup(fd, actual, offload);
    }

    /// <summary>
    /// Takes over a TUN descriptor another process opened (wireguard-go's <c>WG_TUN_FD</c>: the
    /// parent creates the interface, the re-executed daemon inherits it). The name and the
    /// virtio-net header come from the kernel (TUNGETIFF); the descriptor is made non-blocking and
    /// close-on-exec. Throws <see cref="TunException"/> when it is not a TUN device.
    /// </summary>
    public static LinuxTun FromDescriptor(int fd)
    {
        LibC.IfReq request = default;
        if (LibC.Ioctl(fd, LibC.TUNGETIFF, &request) < 0)
            throw new TunException($"descriptor {fd} is not a TUN device: {LibC.Describe(Marshal.GetLastPInvokeError())}");
        var flags = LibC.Fcntl(fd, LibC.F_GETFL, 0);
        LibC.Fcntl(fd, LibC.F_SETFL, flags | LibC.O_NONBLOCK);
        LibC.Fcntl(fd, LibC.F_SETFD, LibC.FD_CLOEXEC);
        var name = Encoding.ASCII.GetString(new ReadOnlySpan<byte>(request.Name, LibC.IFNAMSIZ)).TrimEnd('\0');
        return WithWakeup(fd, name, (request.Flags & LibC.IFF_VNET_HDR) != 0);
    }

    private static LinuxTun WithWakeup(int fd, string name, bool vnetHeader)
    {
        var wake = LibC.EventFd(0, LibC.EFD_CLOEXEC | LibC.EFD_NONBLOCK);
        if (wake < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            LibC.Close(fd);
            throw new TunException($"eventfd failed: {LibC.Describe(errno)}");
        }
        return new LinuxTun(fd, wake, name, vnetHeader);
    }

    /// <summary>
    /// Why the interface is gone (the kernel's error, e.g. EBADFD once the link was deleted), or
    /// null while it is there. Set by <see cref="Read"/>, which returns 0 from then on.
    /// </summary>
    public string? Gone { get; private set; }

    /// <summary>The descriptor, for handing it to a child process (it stays owned by this object).</summary>
    public int Descriptor => _fd;

    /// <summary>
    /// Waits for one packet and copies it into <paramref name="packet"/>. Returns its length, or 0
    /// once the device is closed or gone (<see cref="Gone"/>: every error but EINTR and EAGAIN
    /// means so, as in wireguard-go, because a read that fails once fails forever and retrying it
    /// would only spin). A packet larger than the buffer is truncated by the kernel, so
    /// pass at least MTU bytes (64 KiB plus the virtio-net header with offload). With
    /// <see cref="HasVnetHeader"/> the header comes first and counts in the length.
    /// </summary>
    public int Read(Span<byte> packet)
    {
        if (Gone is not null || !Enter())
            return 0;
        try
        {
            fixed (byte* p = packet)
            {
                while (true)
                {
                    var n = LibC.Read(_fd, p, (nuint)packet.Length);
                    if (n >= 0)
                        return (int)n;
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == LibC.EINTR)
                        continue;
                    if (errno != LibC.EAGAIN)
                    {
                        Gone = $"read from {Name}: {LibC.Describe(errno)}";
                        return 0;
                    }
                    if (!WaitFor(LibC.POLLIN))
                        return 0;
                }
            }
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Hands one IP packet to the kernel (behind an empty virtio-net header when
    /// <see cref="HasVnetHeader"/>). Returns false once the device is closed.</summary>
    public bool Write(ReadOnlySpan<byte> packet)
    {
        if (!Enter())
            return false;
        try
        {
            // A zeroed virtio-net header: no GSO, checksum already complete.
            var header = stackalloc byte[VirtioNetHeader.Size];
            new Span<byte>(header, VirtioNetHeader.Size).Clear();
            fixed (byte* p = packet)
            {
                var iov = stackalloc LibC.IoVec[2];
                iov[0] = new LibC.IoVec { Base = header, Length = VirtioNetHeader.Size };
                iov[1] = new LibC.IoVec { Base = p, Length = (nuint)packet.Length };
                return HasVnetHeader ? WriteToDevice(null, 0, iov, 2) : WriteToDevice(p, (nuint)packet.Length, null, 0);
            }
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Hands the kernel a packet that already starts with its virtio-net header (a
    /// coalesced TCP run, <see cref="TcpCoalescer"/>); only with <see cref="HasVnetHeader"/>.</summary>
    public bool WriteFramed(ReadOnlySpan<byte> framed)
    {
        if (!HasVnetHeader)
            throw new InvalidOperationException("the device has no virtio-net header");
        if (!Enter())
            return false;
        try
        {
            fixed (byte* p = framed)
                return WriteToDevice(p, (nuint)framed.Length, null, 0);
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// One write(2) of <paramref name="data"/>, or writev(2) of <paramref name="iov"/> when given,
    /// retried on EINTR and waiting on EAGAIN. False once the device is closed; the caller holds
    /// <see cref="Enter"/>.
    /// </summary>
    private bool WriteToDevice(byte* data, nuint length, LibC.IoVec* iov, int iovCount)
    {
        while (true)
        {
            var n = iov != null ? LibC.WriteV(_fd, iov, iovCount) : LibC.Write(_fd, data, length);
            if (n >= 0)
                return true;
            var errno = Marshal.GetLastPInvokeError();
            if (errno == LibC.EINTR)
                continue;
            if (errno != LibC.EAGAIN)
                throw new IOException($"write to {Name}: {LibC.Describe(errno)}");
            if (!WaitFor(LibC.POLLOUT))
                return false;
        }
    }

    /// <summary>poll() on the device and the wake-up eventfd; false when woken for close.</summary>
    private bool WaitFor(short events)
    {
        var fds = stackalloc LibC.PollFd[2];
        fds[0] = new LibC.PollFd { Fd = _fd, Events = events };
        fds[1] = new LibC.PollFd { Fd = _wake, Events = LibC.POLLIN };
        while (true)
        {
            if (_closed)
                return false;
            var r = LibC.Poll(fds, 2, -1);
            if (r < 0 && Marshal.GetLastPInvokeError() == LibC.EINTR)
                continue;
            if (r < 0)
                throw new IOException($"poll on {Name}: {LibC.Describe(Marshal.GetLastPInvokeError())}");
            if (fds[1].Revents != 0 || _closed)
                return false;
            return true;
        }
    }

    private bool Enter()
    {
        Interlocked.Increment(ref _users);
        if (!_closed)
            return true;
        Interlocked.Decrement(ref _users);
        return false;
    }

    private void Exit() => Interlocked.Decrement(ref _users);

    /// <summary>Wakes blocked readers and writers, waits for them to leave, then closes (which
    /// deletes the interface).</summary>
    public void Dispose()
    {
        if (_closed)
            return;
        _closed = true;
        ulong one = 1;
        LibC.Write(_wake, (byte*)&one, sizeof(ulong));
        var spin = new SpinWait();
        while (Volatile.Read(ref _users) != 0)
            spin.SpinOnce();
        LibC.Close(_fd);
        LibC.Close(_wake);
        _fd = -1;
        _wake = -1;
    }
}
