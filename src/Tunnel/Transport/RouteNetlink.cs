using System.Net;
using System.Net.Sockets;

namespace Tunnel.Transport;

/// <summary>A route the kernel refused: its errno and, where the kernel gave one, its own text.</summary>
internal readonly record struct RouteFailure(IPNetwork Prefix, int Errno, string? KernelText)
{
    public override string ToString() =>
        KernelText is null ? $"{Prefix}: {LibC.Describe(Errno)}" : $"{Prefix}: {KernelText}: {LibC.Describe(Errno)}";
}

/// <summary>
/// Adds routes through rtnetlink, <see cref="BatchSize"/> RTM_NEWROUTE messages per
/// <c>sendto</c>. Each message is the one <c>ip route add PREFIX dev NAME</c> sends: table main,
/// <c>proto boot</c>, scope link (no gateway), unicast, RTA_DST and RTA_OIF, with NLM_F_CREATE |
/// NLM_F_EXCL, so a route that exists already fails with EEXIST exactly as it does for <c>ip</c>.
/// </summary>
internal sealed unsafe class RouteNetlink : IDisposable
{
    /// <summary>Messages per datagram: 256 IPv6 routes are 14 KiB (the socket's send limit is
    /// ~200 KiB), and even 256 errors fit the receive buffer many times over.</summary>
    public const int BatchSize = 256;

    /// <summary>nlmsghdr + rtmsg + RTA_DST (an IPv6 address) + RTA_OIF.</summary>
    private const int MaxMessageLength = 16 + 12 + (4 + 16) + (4 + 4);

    private readonly RtnetlinkSocket _socket;
    private readonly byte[] _batch = new byte[BatchSize * MaxMessageLength];

    private RouteNetlink(RtnetlinkSocket socket) => _socket = socket;

    /// <summary>A route socket in the caller's network namespace.</summary>
    public static RouteNetlink Open() => new(RtnetlinkSocket.Open());

    /// <summary>Adds a route into interface <paramref name="interfaceIndex"/> for each prefix and
    /// returns the ones the kernel refused (the others are in place).</summary>
    public List<RouteFailure> Add(uint interfaceIndex, IReadOnlyList<IPNetwork> prefixes)
    {
        var failures = new List<RouteFailure>();
        for (int first = 0; first < prefixes.Count; first += BatchSize)
        {
            int count = Math.Min(BatchSize, prefixes.Count - first);
            int length = 0;
            for (int i = 0; i < count; i++)
            {
                bool last = i == count - 1;
                length += WriteNewRoute(_batch.AsSpan(length), prefixes[first + i], interfaceIndex,
                    Sequence(first + i), last);
            }
            int batchStart = first;
            _socket.SendBatch(_batch.AsSpan(0, length), Sequence(first + count - 1), (sequence, errno, text) =>
            {
                int index = (int)(sequence - 1);
                if (index >= batchStart && index < batchStart + count)
                    failures.Add(new RouteFailure(prefixes[index], errno, text));
            });
        }
        return failures;
    }

    /// <summary>Sequence numbers are the prefix's position plus one, so an error names its route.</summary>
    private static uint Sequence(int index) => (uint)index + 1;

    /// <summary>One RTM_NEWROUTE into <paramref name="buffer"/>; its length.</summary>
    private static int WriteNewRoute(Span<byte> buffer, IPNetwork prefix, uint interfaceIndex, uint sequence, bool acknowledge)
    {
        bool v6 = prefix.BaseAddress.AddressFamily == AddressFamily.InterNetworkV6;
        int addressLength = v6 ? 16 : 4;
        int length = sizeof(LibC.NlMsgHdr) + sizeof(LibC.RtMsg)
            + LibC.NetlinkAlign(sizeof(LibC.RtAttr) + addressLength) + LibC.NetlinkAlign(sizeof(LibC.RtAttr) + sizeof(uint));
        buffer = buffer[..length];
        buffer.Clear();
        fixed (byte* start = buffer)
        {
            var header = (LibC.NlMsgHdr*)start;
            header->Length = (uint)length;
            header->Type = LibC.RTM_NEWROUTE;
            header->Flags = (ushort)(LibC.NLM_F_REQUEST | LibC.NLM_F_CREATE | LibC.NLM_F_EXCL
                | (acknowledge ? LibC.NLM_F_ACK : 0));
            header->Sequence = sequence;
            var route = (LibC.RtMsg*)(header + 1);
            route->Family = (byte)(v6 ? LibC.AF_INET6 : LibC.AF_INET);
            route->DstLength = (byte)prefix.PrefixLength;
            route->Table = LibC.RT_TABLE_MAIN;
            route->Protocol = LibC.RTPROT_BOOT;
            route->Scope = LibC.RT_SCOPE_LINK;
            route->Type = LibC.RTN_UNICAST;
            byte* attributes = (byte*)(route + 1);
            var destination = (LibC.RtAttr*)attributes;
            destination->Length = (ushort)(sizeof(LibC.RtAttr) + addressLength);
            destination->Type = LibC.RTA_DST;
            if (!prefix.BaseAddress.TryWriteBytes(new Span<byte>(destination + 1, addressLength), out _))
                throw new ArgumentException($"{prefix}: address does not fit", nameof(prefix));
            var device = (LibC.RtAttr*)(attributes + LibC.NetlinkAlign(destination->Length));
            device->Length = (ushort)(sizeof(LibC.RtAttr) + sizeof(uint));
            device->Type = LibC.RTA_OIF;
            *(uint*)(device + 1) = interfaceIndex;
        }
        return length;
    }

    public void Dispose() => _socket.Dispose();
}
