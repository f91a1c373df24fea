using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The device's one UDP socket: IPv6 with IPV6_V6ONLY off, so it serves IPv4 peers too (as
/// IPv4-mapped addresses), falling back to plain IPv4 where the host has no IPv6. Receive and
/// send use caller buffers (<see cref="UdpReceiveBatch"/>) and <see cref="SocketAddress"/> objects
/// the caller keeps, so the steady state allocates nothing.
/// </summary>
public sealed class UdpBind : IDisposable
{
    /// <summary>What wireguard-go asks for (7 MiB); the kernel caps it at net.core.[rw]mem_max
    /// unless the FORCE variants succeed (they need CAP_NET_ADMIN).</summary>
    public const int SocketBufferSize = 7 << 20;

    // Raw option levels go to setsockopt unchanged, so they must be Linux's own numbers:
    // SocketOptionLevel.Socket is Windows' 0xffff and Linux answers ENOPROTOOPT.
    private const int SOL_SOCKET = 1;
    private const int SO_SNDBUFFORCE = 32;
    private const int SO_RCVBUFFORCE = 33;
    private const int SO_MARK = 36;

    private readonly Socket _socket;
    private volatile bool _closed;

    private UdpBind(Socket socket, bool dualStack)
    {
        _socket = socket;
        DualStack = dualStack;
        Port = (ushort)((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>The bound port (the one the system chose when asked for 0).</summary>
    public ushort Port { get; }

    /// <summary>True for the IPv6 dual-stack socket; false for the IPv4-only fallback.</summary>
    public bool DualStack { get; }

    public AddressFamily AddressFamily => _socket.AddressFamily;

    /// <summary>Binds <paramref name="port"/> on all addresses (0 = any free port). Throws
    /// <see cref="SocketException"/> (AddressAlreadyInUse, ...) when the port cannot be had.</summary>
    public static UdpBind Open(ushort port)
    {
        Socket? socket = null;
        try
        {
            if (Socket.OSSupportsIPv6)
            {
                socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp) { DualMode = true };
                Configure(socket);
                socket.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
                return new UdpBind(socket, dualStack: true);
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressFamilyNotSupported
                                            or SocketError.AddressNotAvailable or SocketError.ProtocolNotSupported)
        {
            // IPv6 disabled at runtime (disable_ipv6, ipv6.disable=1): serve IPv4 only.
            socket?.Dispose();
        }
        catch
        {
            socket?.Dispose();
            throw;
        }
        socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            Configure(socket);
            socket.Bind(new IPEndPoint(IPAddress.Any, port));
            return new UdpBind(socket, dualStack: false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static void Configure(Socket socket)
    {
        socket.Blocking = true;
        socket.ReceiveBufferSize = SocketBufferSize;
        socket.SendBufferSize = SocketBufferSize;
        TryForceBuffer(socket, SO_RCVBUFFORCE);
        TryForceBuffer(socket, SO_SNDBUFFORCE);
        TryEnableGro(socket);
        EnablePacketInfo(socket);
    }

    /// <summary>
    /// Asks for each datagram's local address (IP_PKTINFO for IPv4, IPV6_RECVPKTINFO for IPv6; on
    /// the dual-stack socket both, as IPv4 peers arrive there too), so a reply can leave from the
    /// address the peer wrote to (source-address stickiness, as kernel WireGuard and wireguard-go).
    /// Without it a host with several addresses answers from whichever its routing picks, and a
    /// peer behind a strict NAT or firewall drops the reply.
    /// </summary>
    private static void EnablePacketInfo(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
            return;
        Span<byte> one = stackalloc byte[4];
        BitConverter.TryWriteBytes(one, 1);
        socket.SetRawSocketOption(LibC.SOL_IP, LibC.IP_PKTINFO, one);
        if (socket.AddressFamily == AddressFamily.InterNetworkV6)
            socket.SetRawSocketOption(LibC.SOL_IPV6, LibC.IPV6_RECVPKTINFO, one);
    }

    /// <summary>
    /// UDP_GRO: the kernel may deliver a run of same-sized datagrams from one source as one read,
    /// with their size in a control message (<see cref="ReceiveBatch"/>). Kernels before 5.0
    /// refuse it and deliver datagrams one by one, which ReceiveBatch handles the same way.
    /// </summary>
    private static void TryEnableGro(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
            return;
        Span<byte> one = stackalloc byte[4];
        BitConverter.TryWriteBytes(one, 1);
        try
        {
            socket.SetRawSocketOption(LibC.SOL_UDP, LibC.UDP_GRO, one);
        }
        catch (SocketException)
        {
        }
    }

    private static void TryForceBuffer(Socket socket, int option)
    {
        if (!OperatingSystem.IsLinux())
            return;
        Span<byte> value = stackalloc byte[4];
        BitConverter.TryWriteBytes(value, SocketBufferSize);
        try
        {
            socket.SetRawSocketOption(SOL_SOCKET, option, value);
        }
        catch (SocketException)
        {
            // Not privileged: the plain setting above (capped by the sysctl) stands.
        }
    }

    /// <summary>Sets SO_MARK on outgoing packets (0 clears it); needs CAP_NET_ADMIN.</summary>
    public void SetFwMark(uint mark)
    {
        Span<byte> value = stackalloc byte[4];
        BitConverter.TryWriteBytes(value, mark);
        _socket.SetRawSocketOption(SOL_SOCKET, SO_MARK, value);
    }

    /// <summary>
    /// Waits for at least one message and takes as many more as are queued, up to the batch's
    /// capacity, in one recvmmsg (wireguard-go's batched receive). With UDP_GRO a message may be a
    /// run of datagrams; see <see cref="UdpReceiveBatch"/>. Returns how many messages, 0 when
    /// none was usable (per-datagram errors such as ICMP reported on the socket, or truncation),
    /// or -1 once the bind is closed. Truncated messages are left out (their length reads 0).
    /// </summary>
    internal unsafe int ReceiveBatch(UdpReceiveBatch batch)
    {
        var added = false;
        var handle = _socket.SafeHandle;
        try
        {
            handle.DangerousAddRef(ref added);
            while (true)
            {
                batch.Prepare();
                var n = LibC.RecvMMsg(handle.DangerousGetHandle(), batch.Messages, UdpReceiveBatch.Capacity,
                    LibC.MSG_WAITFORONE, null);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (_closed || errno is LibC.EBADF or LibC.ENOTSOCK or LibC.EINVAL)
                        return -1;
                    if (errno == LibC.EAGAIN && !WaitReadable(handle.DangerousGetHandle()))
                        return -1;
                    continue; // EINTR, EAGAIN, or an error about one datagram (ECONNREFUSED, ...)
                }
                if (_closed)
                    return -1; // woken by Dispose's shutdown()
                for (var i = 0; i < n; i++)
                {
                    if (!batch.Complete(i))
                        batch.Messages[i].Length = 0;
                }
                return n;
            }
        }
        catch (ObjectDisposedException)
        {
            return -1;
        }
        finally
        {
            if (added)
                handle.DangerousRelease();
        }
    }

    /// <summary>For a socket the runtime made non-blocking: waits until readable, in slices so a
    /// close is noticed. False once closed.</summary>
    private unsafe bool WaitReadable(nint fd)
    {
        var poll = new LibC.PollFd { Fd = (int)fd, Events = LibC.POLLIN };
        while (!_closed)
        {
            if (LibC.Poll(&poll, 1, 100) != 0)
                return !_closed;
        }
        return false;
    }

    /// <summary>Sends one datagram to <paramref name="destination"/> (<paramref name="to"/> written
    /// for this socket), from <paramref name="to"/>'s source address when it has one. Returns false
    /// when it could not leave (no route, closed, ...): UDP gives no delivery promise anyway, and
    /// the protocol's timers recover.</summary>
    public bool Send(ReadOnlySpan<byte> datagram, SocketAddress destination, in Endpoint to) =>
        SendMessage(datagram, 0, destination, to, out _) == datagram.Length;

    /// <summary>
    /// Sends <paramref name="datagrams"/> as datagrams of <paramref name="segmentSize"/> bytes
    /// each (the last may be shorter) with one sendmsg and UDP_SEGMENT: the kernel builds one large
    /// packet and splits it as late as it can (on a veth pair, in the receiving namespace or not at
    /// all when the receiver asks for UDP_GRO). False when they did not leave; then
    /// <paramref name="unsupported"/> is true if the kernel or route refuses GSO (EIO, EINVAL,
    /// ENOPROTOOPT), so the caller sends them one by one instead.
    /// </summary>
    public bool SendSegments(ReadOnlySpan<byte> datagrams, int segmentSize, SocketAddress destination, in Endpoint to,
        out bool unsupported)
    {
        var n = SendMessage(datagrams, segmentSize, destination, to, out var errno);
        unsupported = n < 0 && errno is LibC.EIO or LibC.EINVAL or LibC.ENOPROTOOPT;
        return n == datagrams.Length;
    }

    /// <summary>
    /// One sendmsg: the data, UDP_SEGMENT when <paramref name="segmentSize"/> is not 0, and the
    /// source address when <paramref name="to"/> has one. A send that fails with a source (the
    /// address was removed: EINVAL for IPv6, ENETUNREACH for IPv4, EADDRNOTAVAIL) is tried once
    /// more without it, as the kernel clears a stale src4/src6 and routes again; the next datagram
    /// from the peer brings a fresh one. Returns the bytes sent, or -1 with <paramref name="errno"/>.
    /// </summary>
    private unsafe int SendMessage(ReadOnlySpan<byte> data, int segmentSize, SocketAddress destination, in Endpoint to,
        out int errno)
    {
        errno = 0;
        var added = false;
        var handle = _socket.SafeHandle;
        try
        {
            handle.DangerousAddRef(ref added);
            var control = stackalloc byte[SendControlSize];
            var sourceLength = WriteSourceControl(new Span<byte>(control, SendControlSize), to);
            var segmentLength = 0;
            if (segmentSize != 0)
            {
                var segment = (LibC.CmsgHdr*)(control + sourceLength);
                segmentLength = LibC.CmsgHdr.Space(sizeof(ushort));
                new Span<byte>(segment, segmentLength).Clear();
                segment->Length = (nuint)(LibC.CmsgHdr.DataOffset + sizeof(ushort));
                segment->Level = LibC.SOL_UDP;
                segment->Type = LibC.UDP_SEGMENT;
                *(ushort*)((byte*)segment + LibC.CmsgHdr.DataOffset) = (ushort)segmentSize;
            }
            var name = destination.Buffer.Span;
            fixed (byte* bytes = data)
            fixed (byte* address = name)
            {
                var iov = new LibC.IoVec { Base = bytes, Length = (nuint)data.Length };
                var message = new LibC.MsgHdr
                {
                    Name = address,
                    NameLength = (uint)destination.Size,
                    Iov = &iov,
                    IovLength = 1,
                };
                var withSource = sourceLength != 0;
                while (true)
                {
                    // The source control message comes first, so dropping it is starting later.
                    var skip = withSource ? 0 : sourceLength;
                    var controlLength = sourceLength - skip + segmentLength;
                    message.Control = controlLength == 0 ? null : control + skip;
                    message.ControlLength = (nuint)controlLength;
                    var n = LibC.SendMsg(handle.DangerousGetHandle(), &message, 0);
                    if (n >= 0)
                        return (int)n;
                    errno = Marshal.GetLastPInvokeError();
                    if (errno == LibC.EINTR)
                        continue;
                    if (errno == LibC.EAGAIN && WaitWritable(handle.DangerousGetHandle()))
                        continue;
                    if (withSource)
                    {
                        withSource = false;
                        continue;
                    }
                    return -1;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            errno = LibC.EBADF;
            return -1;
        }
        finally
        {
            if (added)
                handle.DangerousRelease();
        }
    }

    // Room for the larger source message (in6_pktinfo) and UDP_SEGMENT's.
    private static unsafe readonly int SendControlSize =
        LibC.CmsgHdr.Space(sizeof(LibC.In6PktInfo)) + LibC.CmsgHdr.Space(sizeof(ushort));

    /// <summary>
    /// The control message that names the reply's source: IP_PKTINFO (ipi_spec_dst) for an IPv4
    /// peer, on either socket (a dual-stack socket takes SOL_IP messages for IPv4-mapped peers),
    /// IPV6_PKTINFO for an IPv6 one. The interface is left to routing (0), except for a link-local
    /// IPv6 source, which is only an address on its own link. Returns its length, 0 for none.
    /// </summary>
    private static unsafe int WriteSourceControl(Span<byte> control, in Endpoint to)
    {
        if (!to.HasSource)
            return 0;
        Span<byte> source = stackalloc byte[16];
        to.WriteSourceBytes(source, out var sourceLength);
        if (sourceLength != to.AddressLength)
            return 0; // an IPv4 peer seen through an IPv6 address, or the reverse: let routing choose
        fixed (byte* start = control)
        {
            var cmsg = (LibC.CmsgHdr*)start;
            if (sourceLength == 4)
            {
                var length = LibC.CmsgHdr.Space(sizeof(LibC.InPktInfo));
                control[..length].Clear();
                cmsg->Length = (nuint)(LibC.CmsgHdr.DataOffset + sizeof(LibC.InPktInfo));
                cmsg->Level = LibC.SOL_IP;
                cmsg->Type = LibC.IP_PKTINFO;
                var info = (LibC.InPktInfo*)(start + LibC.CmsgHdr.DataOffset);
                info->SpecificDestination = MemoryMarshal.Read<uint>(source);
                return length;
            }
            else
            {
                var length = LibC.CmsgHdr.Space(sizeof(LibC.In6PktInfo));
                control[..length].Clear();
                cmsg->Length = (nuint)(LibC.CmsgHdr.DataOffset + sizeof(LibC.In6PktInfo));
                cmsg->Level = LibC.SOL_IPV6;
                cmsg->Type = LibC.IPV6_PKTINFO;
                var info = (LibC.In6PktInfo*)(start + LibC.CmsgHdr.DataOffset);
                source.CopyTo(new Span<byte>(info->Address, 16));
                var linkLocal = source[0] == 0xfe && (source[1] & 0xc0) == 0x80;
                info->IfIndex = linkLocal ? to.SourceIfIndex : 0;
                return length;
            }
        }
    }

    /// <summary>A full send buffer on a socket the runtime made non-blocking: waits until it drains,
    /// in slices so a close is noticed. False once closed.</summary>
    private unsafe bool WaitWritable(nint fd)
    {
        var poll = new LibC.PollFd { Fd = (int)fd, Events = LibC.POLLOUT };
        while (!_closed)
        {
            if (LibC.Poll(&poll, 1, 100) != 0)
                return !_closed;
        }
        return false;
    }

    /// <summary>Closes the socket; a thread blocked in <see cref="ReceiveBatch"/> returns -1.</summary>
    public void Dispose()
    {
        _closed = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
        }
        _socket.Dispose();
    }
}
