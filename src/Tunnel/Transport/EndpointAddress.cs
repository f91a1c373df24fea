using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// Writes an <see cref="Endpoint"/> into a <see cref="SocketAddress"/> of the socket's family without
/// allocating: the bytes of a Linux <c>sockaddr_in6</c> (family, port, flow info, address, scope)
/// or <c>sockaddr_in</c> (family, port, address), and reads received source addresses back the same
/// way. On the dual-stack socket an IPv4 endpoint goes out as the IPv4-mapped IPv6 address, as the
/// kernel expects there.
/// </summary>
internal static class EndpointAddress
{
    private const int PortOffset = 2;
    private const int Ipv6FlowInfoOffset = 4;
    private const int Ipv6AddressOffset = 8;
    private const int Ipv6ScopeOffset = 24;
    private const int Ipv6Size = 28;
    private const int Ipv4AddressOffset = 4;
    private const int Ipv4Size = 16;

    /// <summary>
    /// Fills <paramref name="address"/> (created for <paramref name="family"/>) with
    /// <paramref name="endpoint"/>. False when the
    /// endpoint cannot be reached through that family (IPv6 on the IPv4-only fallback socket).
    /// </summary>
    public static bool TryWrite(in Endpoint endpoint, AddressFamily family, SocketAddress address)
    {
        Span<byte> ip = stackalloc byte[16];
        endpoint.WriteAddressBytes(ip, out var length);
        var bytes = address.Buffer.Span;
        if (family == AddressFamily.InterNetworkV6)
        {
            address.Size = Ipv6Size;
            BinaryPrimitives.WriteUInt16BigEndian(bytes[PortOffset..], (ushort)endpoint.Port);
            bytes.Slice(Ipv6FlowInfoOffset, 4).Clear();
            var target = bytes.Slice(Ipv6AddressOffset, 16);
            if (length == 4)
            {
                target[..10].Clear();
                target[10] = 0xff;
                target[11] = 0xff;
                ip[..4].CopyTo(target[12..]);
            }
            else
            {
                ip.CopyTo(target);
            }
            // A link-local address means nothing without its interface. Endpoint keeps the scope
            // but does not expose it, so take the (allocating) detour for these rare peers only.
            var scope = length == 16 && ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80
                ? (uint)endpoint.ToIPEndPoint().Address.ScopeId
                : 0;
            BitConverter.TryWriteBytes(bytes.Slice(Ipv6ScopeOffset, 4), scope);
            return true;
        }
        if (length != 4)
            return false;
        address.Size = Ipv4Size;
        BinaryPrimitives.WriteUInt16BigEndian(bytes[PortOffset..], (ushort)endpoint.Port);
        ip[..4].CopyTo(bytes[Ipv4AddressOffset..]);
        bytes[(Ipv4AddressOffset + 4)..Ipv4Size].Clear();
        return true;
    }

    /// <summary>
    /// The endpoint a received source address names, read straight from the sockaddr bytes as
    /// recvmsg returns them (family in the first two bytes, host order). An IPv4-mapped IPv6
    /// address (an IPv4 peer on the dual-stack socket) becomes a plain IPv4 endpoint, so a peer's
    /// endpoint reads the same whichever socket saw it. False for a family we do not speak or a
    /// short address.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> sockaddr, out Endpoint endpoint)
    {
        endpoint = default;
        if (sockaddr.Length < Ipv4Size)
            return false;
        var family = BitConverter.ToUInt16(sockaddr);
        if (family == LinuxAfInet6 && sockaddr.Length >= Ipv6Size)
            endpoint = Read(sockaddr, ipv6: true);
        else if (family == LinuxAfInet)
            endpoint = Read(sockaddr, ipv6: false);
        else
            return false;
        return true;
    }

    private const ushort LinuxAfInet = 2;
    private const ushort LinuxAfInet6 = 10;

    private static Endpoint Read(ReadOnlySpan<byte> bytes, bool ipv6)
    {
        var port = BinaryPrimitives.ReadUInt16BigEndian(bytes[PortOffset..]);
        if (ipv6 && bytes.Length >= Ipv6Size)
        {
            var ip = bytes.Slice(Ipv6AddressOffset, 16);
            if (IsIpv4Mapped(ip))
                return new Endpoint(ip[12..], port);
            return new Endpoint(ip, port, BitConverter.ToUInt32(bytes[Ipv6ScopeOffset..]));
        }
        return new Endpoint(bytes.Slice(Ipv4AddressOffset, 4), port);
    }

    private static bool IsIpv4Mapped(ReadOnlySpan<byte> ip) =>
        ip[..10].IndexOfAnyExcept((byte)0) < 0 && ip[10] == 0xff && ip[11] == 0xff;
}
