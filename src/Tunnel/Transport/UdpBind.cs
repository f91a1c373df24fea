using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

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

    /// <summary>Sends one datagram. Returns false when it could not leave (no route, closed, ...):
    /// UDP gives no delivery promise anyway, and the protocol's timers recover.</summary>
    public bool Send(ReadOnlySpan<byte> datagram, SocketAddress destination)
    {
        try
        {
            return _socket.SendTo(datagram, SocketFlags.None, destination) == datagram.Length;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Sends <paramref name="datagrams"/> as datagrams of <paramref name="segmentSize"/> bytes
    /// each (the last may be shorter) with one sendmsg and UDP_SEGMENT: the kernel builds one large
    /// packet and splits it as late as it can (on a veth pair, in the receiving namespace or not at
    /// all when the receiver asks for UDP_GRO). False when they did not leave; then
    /// <paramref name="unsupported"/> is true if the kernel or route refuses GSO (EIO, EINVAL,
    /// ENOPROTOOPT), so the caller sends them one by one instead.
    /// </summary>
    public unsafe bool SendSegments(ReadOnlySpan<byte> datagrams, int segmentSize, SocketAddress destination,
        out bool unsupported)
    {
        unsupported = false;
        var added = false;
        var handle = _socket.SafeHandle;
        try
        {
            handle.DangerousAddRef(ref added);
            var control = stackalloc byte[LibC.CmsgHdr.Space(sizeof(ushort))];
            new Span<byte>(control, LibC.CmsgHdr.Space(sizeof(ushort))).Clear();
            var cmsg = (LibC.CmsgHdr*)control;
            cmsg->Length = (nuint)(LibC.CmsgHdr.DataOffset + sizeof(ushort));
            cmsg->Level = LibC.SOL_UDP;
            cmsg->Type = LibC.UDP_SEGMENT;
            *(ushort*)(control + LibC.CmsgHdr.DataOffset) = (ushort)segmentSize;
            var name = destination.Buffer.Span;
            fixed (byte* data = datagrams)
            fixed (byte* address = name)
            {
                var iov = new LibC.IoVec { Base = data, Length = (nuint)datagrams.Length };
                var message = new LibC.MsgHdr
                {
                    Name = address,
                    NameLength = (uint)destination.Size,
                    Iov = &iov,
                    IovLength = 1,
                    Control = control,
                    ControlLength = (nuint)LibC.CmsgHdr.Space(sizeof(ushort)),
                };
                while (true)
                {
                    var n = LibC.SendMsg(handle.DangerousGetHandle(), &message, 0);
                    if (n >= 0)
                        return n == datagrams.Length;
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == LibC.EINTR)
                        continue;
                    unsupported = errno is LibC.EIO or LibC.EINVAL or LibC.ENOPROTOOPT;
                    return false;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            if (added)
                handle.DangerousRelease();
        }
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
