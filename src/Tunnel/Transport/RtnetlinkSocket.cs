using System.Runtime.InteropServices;

namespace Tunnel.Transport;

/// <summary>
/// A <c>NETLINK_ROUTE</c> socket that sends many requests in one <c>sendto</c> and collects the
/// kernel's answers. The kernel handles a request datagram synchronously and in order, message by
/// message, so every answer is queued when <c>sendto</c> returns: the caller asks for an
/// acknowledgement on the last message of a batch only, and every failure before it still comes
/// back as its own NLMSG_ERROR (the kernel answers a failed message whether or not it asked).
/// </summary>
internal sealed unsafe class RtnetlinkSocket : IDisposable
{
    /// <summary>Room for the answers of one batch: even if every message of it fails, each error
    /// is one small skb (capped to the request header), far below this.</summary>
    private const int ReceiveBuffer = 4 << 20;
    private const int ReplyTimeoutMs = 10_000;

    private readonly int _fd;
    private readonly byte[] _reply = GC.AllocateArray<byte>(64 << 10, pinned: true);

    private RtnetlinkSocket(int fd) => _fd = fd;

    /// <summary>Opens and binds the socket in the caller's network namespace.</summary>
    public static RtnetlinkSocket Open()
    {
        int fd = LibC.Socket(LibC.AF_NETLINK, LibC.SOCK_RAW | LibC.SOCK_CLOEXEC, LibC.NETLINK_ROUTE);
        if (fd < 0)
            throw new TunException($"socket(AF_NETLINK, NETLINK_ROUTE): {LibC.Describe(LibC.LastError)}");
        var socket = new RtnetlinkSocket(fd);
        try
        {
            int size = ReceiveBuffer, on = 1;
            // FORCE passes net.core.rmem_max (we hold CAP_NET_ADMIN, as for the TUN); without it
            // the plain option still raises the buffer as far as the limit allows.
            if (LibC.SetSockOpt(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUFFORCE, &size, sizeof(int)) != 0)
                LibC.SetSockOpt(fd, LibC.SOL_SOCKET, LibC.SO_RCVBUF, &size, sizeof(int));
            // Both are optional (older kernels): without them errors quote the whole request and
            // carry no text, which the reader handles too.
            LibC.SetSockOpt(fd, LibC.SOL_NETLINK, LibC.NETLINK_CAP_ACK, &on, sizeof(int));
            LibC.SetSockOpt(fd, LibC.SOL_NETLINK, LibC.NETLINK_EXT_ACK, &on, sizeof(int));
            var local = new LibC.SockAddrNetlink { Family = LibC.AF_NETLINK };
            if (LibC.Bind(fd, &local, (uint)sizeof(LibC.SockAddrNetlink)) != 0)
                throw new TunException($"bind(NETLINK_ROUTE): {LibC.Describe(LibC.LastError)}");
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <paramref name="messages"/> (whole netlink messages, the last with NLM_F_ACK and
    /// sequence number <paramref name="lastSequence"/>) and reads answers until that one's, calling
    /// <paramref name="onError"/> with (sequence, errno, kernel text or null) for each failure.
    /// Throws <see cref="TunException"/> when the socket fails or the answers are lost.
    /// </summary>
    public void SendBatch(ReadOnlySpan<byte> messages, uint lastSequence, Action<uint, int, string?> onError)
    {
        var kernel = new LibC.SockAddrNetlink { Family = LibC.AF_NETLINK };
        fixed (byte* data = messages)
        {
            nint sent;
            do
                sent = LibC.SendTo(_fd, data, (nuint)messages.Length, 0, &kernel, (uint)sizeof(LibC.SockAddrNetlink));
            while (sent < 0 && LibC.LastError == LibC.EINTR);
            if (sent < 0)
                throw new TunException($"rtnetlink sendto ({messages.Length} bytes): {LibC.Describe(LibC.LastError)}");
        }
        while (!ReadReplies(lastSequence, onError))
        {
        }
    }

    /// <summary>One datagram of answers; true once the answer to <paramref name="lastSequence"/> was in it.</summary>
    private bool ReadReplies(uint lastSequence, Action<uint, int, string?> onError)
    {
        int length = Receive();
        bool done = false;
        fixed (byte* buffer = _reply)
        {
            for (int offset = 0; offset + sizeof(LibC.NlMsgHdr) <= length;)
            {
                var header = (LibC.NlMsgHdr*)(buffer + offset);
                int messageLength = (int)header->Length;
                if (messageLength < sizeof(LibC.NlMsgHdr) || offset + messageLength > length)
                    throw new TunException("rtnetlink: malformed answer from the kernel");
                if (header->Type == LibC.NLMSG_ERROR && messageLength >= sizeof(LibC.NlMsgHdr) + sizeof(LibC.NlMsgErr))
                {
                    var error = (LibC.NlMsgErr*)(header + 1);
                    if (error->Error != 0)
                        onError(header->Sequence, -error->Error, ExtendedAckText(header, error));
                    if (header->Sequence == lastSequence)
                        done = true;
                }
                offset += LibC.NetlinkAlign(messageLength);
            }
        }
        return done;
    }

    private int Receive()
    {
        fixed (byte* buffer = _reply)
        {
            while (true)
            {
                var poll = new LibC.PollFd { Fd = _fd, Events = LibC.POLLIN };
                int ready = LibC.Poll(&poll, 1, ReplyTimeoutMs);
                if (ready == 0)
                    throw new TunException("rtnetlink: the kernel did not answer");
                if (ready < 0)
                {
                    if (LibC.LastError == LibC.EINTR)
                        continue;
                    throw new TunException($"rtnetlink poll: {LibC.Describe(LibC.LastError)}");
                }
                var iov = new LibC.IoVec { Base = buffer, Length = (nuint)_reply.Length };
                var message = new LibC.MsgHdr { Iov = &iov, IovLength = 1 };
                nint n = LibC.RecvMsg(_fd, &message, LibC.MSG_DONTWAIT);
                if (n >= 0)
                {
                    if ((message.Flags & LibC.MSG_TRUNC) != 0)
                        throw new TunException("rtnetlink: an answer did not fit the receive buffer");
                    return (int)n;
                }
                int errno = LibC.LastError;
                if (errno is LibC.EINTR or LibC.EAGAIN)
                    continue;
                // ENOBUFS: answers were dropped, so which requests failed is no longer known.
                throw new TunException($"rtnetlink recvmsg: {LibC.Describe(errno)}");
            }
        }
    }

    /// <summary>NLMSGERR_ATTR_MSG of an extended acknowledgement, if the kernel gave one.</summary>
    private static string? ExtendedAckText(LibC.NlMsgHdr* header, LibC.NlMsgErr* error)
    {
        if ((header->Flags & LibC.NLM_F_ACK_TLVS) == 0)
            return null;
        int quoted = (header->Flags & LibC.NLM_F_CAPPED) != 0
            ? sizeof(LibC.NlMsgHdr)
            : LibC.NetlinkAlign((int)error->Request.Length);
        int offset = LibC.NetlinkAlign(sizeof(LibC.NlMsgHdr) + sizeof(int) + quoted);
        byte* start = (byte*)header;
        while (offset + sizeof(LibC.RtAttr) <= header->Length)
        {
            var attribute = (LibC.RtAttr*)(start + offset);
            if (attribute->Length < sizeof(LibC.RtAttr) || offset + attribute->Length > header->Length)
                return null;
            if (attribute->Type == LibC.NLMSGERR_ATTR_MSG)
            {
                var text = new ReadOnlySpan<byte>(attribute + 1, attribute->Length - sizeof(LibC.RtAttr));
                int end = text.IndexOf((byte)0);
                return System.Text.Encoding.UTF8.GetString(end < 0 ? text : text[..end]);
            }
            offset += LibC.NetlinkAlign(attribute->Length);
        }
        return null;
    }

    public void Dispose() => LibC.Close(_fd);
}
