using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Tunnel.Device;

/// <summary>
/// A UDP endpoint (IPv4 or IPv6 address and port) held as plain bytes in a value, so the receive
/// path can compare and store the sender's address for roaming without allocating an
/// <see cref="IPEndPoint"/> per packet. IPv4 is kept as 4 bytes (not IPv4-mapped IPv6).
/// <para>A received endpoint also carries the local address the datagram arrived at (its
/// <em>source</em> for replies: kernel WireGuard's endpoint src4/src6, wireguard-go's sticky
/// sockets), so a host with several addresses answers from the one the peer wrote to. The source
/// is not part of equality (<see cref="Equals(Endpoint)"/> compares where the peer is, as UAPI shows
/// it) and not shown; <see cref="SameSource"/> compares it. An endpoint set by configuration has no
/// source: the kernel's routing picks one.</para>
/// </summary>
public readonly struct Endpoint : IEquatable<Endpoint>
{
    // The address in network order: IPv4 in the first 4 bytes of _high (upper half), IPv6 across both.
    private readonly ulong _high;
    private readonly ulong _low;
    private readonly uint _scopeId;
    private readonly ushort _port;
    private readonly byte _family; // 0 = default (no address), 4 or 6
    // The local (source) address, held the same way; _sourceFamily 0 = none.
    private readonly ulong _sourceHigh;
    private readonly ulong _sourceLow;
    private readonly int _sourceIfIndex;
    private readonly byte _sourceFamily;

    private Endpoint(in Endpoint destination, ulong sourceHigh, ulong sourceLow, int sourceIfIndex, byte sourceFamily)
    {
        this = destination;
        _sourceHigh = sourceHigh;
        _sourceLow = sourceLow;
        _sourceIfIndex = sourceIfIndex;
        _sourceFamily = sourceFamily;
    }

    /// <summary>An endpoint from raw address bytes (4 or 16, network order) and a port.</summary>
    public Endpoint(ReadOnlySpan<byte> address, int port, uint scopeId = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, ushort.MaxValue);
        if (address.Length == 4)
        {
            _high = (ulong)BinaryPrimitives.ReadUInt32BigEndian(address) << 32;
            _family = 4;
        }
        else if (address.Length == 16)
        {
            _high = BinaryPrimitives.ReadUInt64BigEndian(address);
            _low = BinaryPrimitives.ReadUInt64BigEndian(address[8..]);
            _scopeId = scopeId;
            _family = 6;
        }
        else
        {
            throw new ArgumentException("An IP address is 4 or 16 bytes.", nameof(address));
        }
        _port = (ushort)port;
    }

    public AddressFamily Family => _family switch
    {
        4 => AddressFamily.InterNetwork,
        6 => AddressFamily.InterNetworkV6,
        _ => AddressFamily.Unspecified,
    };

    public int Port => _port;

    /// <summary>Length of the address in bytes: 4, 16, or 0 for the default value.</summary>
    public int AddressLength => _family == 4 ? 4 : _family == 6 ? 16 : 0;

    public static Endpoint FromIPEndPoint(IPEndPoint ep)
    {
        ArgumentNullException.ThrowIfNull(ep);
        Span<byte> bytes = stackalloc byte[16];
        IPAddress address = ep.Address.IsIPv4MappedToIPv6 ? ep.Address.MapToIPv4() : ep.Address;
        address.TryWriteBytes(bytes, out int written);
        uint scope = address.AddressFamily == AddressFamily.InterNetworkV6 ? (uint)address.ScopeId : 0;
        return new Endpoint(bytes[..written], ep.Port, scope);
    }

    public IPEndPoint ToIPEndPoint()
    {
        Span<byte> bytes = stackalloc byte[16];
        WriteAddressBytes(bytes, out int length);
        if (length == 0)
            return new IPEndPoint(IPAddress.Any, _port);
        var address = length == 16 ? new IPAddress(bytes[..16], _scopeId) : new IPAddress(bytes[..4]);
        return new IPEndPoint(address, _port);
    }

    /// <summary>Writes the address (4 or 16 bytes, network order) to <paramref name="dst"/>.</summary>
    public void WriteAddressBytes(Span<byte> dst, out int length)
    {
        if (_family == 4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(dst, (uint)(_high >> 32));
            length = 4;
        }
        else if (_family == 6)
        {
            BinaryPrimitives.WriteUInt64BigEndian(dst, _high);
            BinaryPrimitives.WriteUInt64BigEndian(dst[8..], _low);
            length = 16;
        }
        else
        {
            length = 0;
        }
    }

    /// <summary>
    /// This endpoint with <paramref name="address"/> (4 or 16 bytes, network order; empty for none)
    /// as the local address replies leave from. <paramref name="ifIndex"/> is the interface it
    /// arrived on, kept for an IPv6 link-local source, which means nothing without it.
    /// </summary>
    public Endpoint WithSource(ReadOnlySpan<byte> address, int ifIndex)
    {
        if (address.Length == 4)
            return new Endpoint(this, (ulong)BinaryPrimitives.ReadUInt32BigEndian(address) << 32, 0, ifIndex, 4);
        if (address.Length == 16)
            return new Endpoint(this, BinaryPrimitives.ReadUInt64BigEndian(address),
                BinaryPrimitives.ReadUInt64BigEndian(address[8..]), ifIndex, 6);
        return WithoutSource();
    }

    /// <summary>This endpoint with no source: the kernel's routing chooses one.</summary>
    public Endpoint WithoutSource() => new(this, 0, 0, 0, 0);

    /// <summary>True when a reply has a local address to leave from.</summary>
    public bool HasSource => _sourceFamily != 0;

    /// <summary>The interface the source address was seen on (0 when unknown).</summary>
    public int SourceIfIndex => _sourceIfIndex;

    /// <summary>Writes the source address (4 or 16 bytes, network order; 0 for none).</summary>
    public void WriteSourceBytes(Span<byte> dst, out int length)
    {
        if (_sourceFamily == 4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(dst, (uint)(_sourceHigh >> 32));
            length = 4;
        }
        else if (_sourceFamily == 6)
        {
            BinaryPrimitives.WriteUInt64BigEndian(dst, _sourceHigh);
            BinaryPrimitives.WriteUInt64BigEndian(dst[8..], _sourceLow);
            length = 16;
        }
        else
        {
            length = 0;
        }
    }

    /// <summary>Same local address and interface (the part <see cref="Equals(Endpoint)"/> leaves out).</summary>
    public bool SameSource(in Endpoint other) =>
        _sourceHigh == other._sourceHigh && _sourceLow == other._sourceLow
        && _sourceIfIndex == other._sourceIfIndex && _sourceFamily == other._sourceFamily;

    /// <summary>The bytes a cookie is bound to: address then port, big-endian (as the kernel). At most 18.</summary>
    internal int WriteCookieSource(Span<byte> dst)
    {
        WriteAddressBytes(dst, out int length);
        BinaryPrimitives.WriteUInt16BigEndian(dst[length..], _port);
        return length + 2;
    }

    /// <summary>Parses "1.2.3.4:51820" or "[::1]:51820" (as wg(8) prints endpoints).</summary>
    public static bool TryParse(string text, out Endpoint ep)
    {
        ep = default;
        if (string.IsNullOrEmpty(text))
            return false;
        int colon = text.LastIndexOf(':');
        if (colon <= 0)
            return false;
        ReadOnlySpan<char> host = text.AsSpan(0, colon);
        if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port)
            || port > ushort.MaxValue)
            return false;
        bool bracketed = host.Length >= 2 && host[0] == '[' && host[^1] == ']';
        if (bracketed)
            host = host[1..^1];
        else if (host.Contains(':'))
            return false; // an IPv6 address must be bracketed, or the port is ambiguous
        if (!IPAddress.TryParse(host, out IPAddress? address))
            return false;
        if (bracketed != (address.AddressFamily == AddressFamily.InterNetworkV6))
            return false;
        ep = FromIPEndPoint(new IPEndPoint(address, port));
        return true;
    }

    public override string ToString()
    {
        if (_family == 0)
            return "(none)";
        IPEndPoint ep = ToIPEndPoint();
        return _family == 6
            ? string.Create(CultureInfo.InvariantCulture, $"[{ep.Address}]:{_port}")
            : string.Create(CultureInfo.InvariantCulture, $"{ep.Address}:{_port}");
    }

    public bool Equals(Endpoint other) =>
        _high == other._high && _low == other._low && _scopeId == other._scopeId
        && _port == other._port && _family == other._family;

    public override bool Equals(object? obj) => obj is Endpoint other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_high, _low, _port, _family);
    public static bool operator ==(Endpoint left, Endpoint right) => left.Equals(right);
    public static bool operator !=(Endpoint left, Endpoint right) => !left.Equals(right);
}
