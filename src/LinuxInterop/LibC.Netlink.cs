using System.Runtime.InteropServices;

namespace LinuxInterop;

/// <summary>
/// rtnetlink (<c>NETLINK_ROUTE</c>): the values and layouts of <c>linux/netlink.h</c> and
/// <c>linux/rtnetlink.h</c> that the route installer needs, and the socket calls around it.
/// </summary>
public static unsafe partial class LibC
{
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;
    public const int SOCK_RAW = 3;
    public const int NETLINK_ROUTE = 0;
    public const int MSG_DONTWAIT = 0x40;

    public const int ESRCH = 3;
    public const int EEXIST = 17;
    public const int ENOBUFS = 105;

    // setsockopt(2)
    public const int SOL_SOCKET = 1;
    public const int SO_RCVBUF = 8;
    public const int SO_RCVBUFFORCE = 33;
    public const int SOL_NETLINK = 270;
    /// <summary>Errors quote only the failed message's header, not its whole payload.</summary>
    public const int NETLINK_CAP_ACK = 10;
    /// <summary>Errors carry the kernel's text ("Nexthop device is not up"), as <c>ip</c> prints it.</summary>
    public const int NETLINK_EXT_ACK = 11;

    // struct nlmsghdr: types and flags
    public const ushort NLMSG_ERROR = 2;
    public const ushort NLMSG_DONE = 3;
    public const ushort NLM_F_REQUEST = 0x01;
    public const ushort NLM_F_ACK = 0x04;
    public const ushort NLM_F_EXCL = 0x200;
    public const ushort NLM_F_CREATE = 0x400;
    /// <summary>On an error message: the quoted request is its header only (NETLINK_CAP_ACK).</summary>
    public const ushort NLM_F_CAPPED = 0x100;
    /// <summary>On an error message: extended-ack attributes follow the quoted request.</summary>
    public const ushort NLM_F_ACK_TLVS = 0x200;
    public const ushort NLMSGERR_ATTR_MSG = 1;

    // rtnetlink
    public const ushort RTM_NEWROUTE = 24;
    public const ushort RTM_DELROUTE = 25;
    public const ushort RTA_DST = 1;
    public const ushort RTA_OIF = 4;
    public const byte RT_TABLE_MAIN = 254;
    /// <summary>What <c>ip route add</c> marks its routes with (the default <c>proto boot</c>).</summary>
    public const byte RTPROT_BOOT = 3;
    public const byte RT_SCOPE_UNIVERSE = 0;
    public const byte RT_SCOPE_LINK = 253;
    public const byte RT_SCOPE_NOWHERE = 255;
    public const byte RTN_UNICAST = 1;

    /// <summary><c>struct nlmsghdr</c> (16 bytes; every message and attribute is 4-byte aligned).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct NlMsgHdr
    {
        public uint Length;
        public ushort Type;
        public ushort Flags;
        public uint Sequence;
        public uint PortId;
    }

    /// <summary><c>struct nlmsgerr</c>: the payload of NLMSG_ERROR (error 0 is an acknowledgement).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct NlMsgErr
    {
        public int Error;
        public NlMsgHdr Request;
    }

    /// <summary><c>struct rtmsg</c> (12 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct RtMsg
    {
        public byte Family;
        public byte DstLength;
        public byte SrcLength;
        public byte Tos;
        public byte Table;
        public byte Protocol;
        public byte Scope;
        public byte Type;
        public uint Flags;
    }

    /// <summary><c>struct rtattr</c> / <c>struct nlattr</c> (4 bytes, then the value, padded to 4).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct RtAttr
    {
        public ushort Length;
        public ushort Type;
    }

    /// <summary>NLMSG_ALIGN / RTA_ALIGN.</summary>
    public static int NetlinkAlign(int length) => (length + 3) & ~3;

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, uint length);

    /// <summary>The interface's index, or 0 (errno set) when there is none of that name.</summary>
    [LibraryImport(Lib, EntryPoint = "if_nametoindex", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial uint IfNameToIndex(string name);
}
