using System.Runtime.InteropServices;

namespace Tunnel.Transport;

/// <summary>
/// Room for one recvmmsg(2): <see cref="Capacity"/> messages, each with a 64 KiB buffer (with
/// UDP_GRO one message can be a run of same-sized datagrams from one source), its source address
/// and its control data. Native memory, so the kernel writes straight into it and nothing moves
/// or is allocated per read; one owner thread; <see cref="Dispose"/> frees it.
/// After <see cref="UdpBind.ReceiveBatch"/>, message <c>i</c> is <see cref="Data"/>(i), cut into
/// datagrams of <see cref="SegmentSize"/>(i) bytes, from <see cref="Source"/>(i), to our local
/// address <see cref="LocalAddress"/>(i) (IP_PKTINFO / IPV6_PKTINFO, for replies from the same one).
/// </summary>
internal sealed unsafe class UdpReceiveBatch : IDisposable
{
    /// <summary>Messages per read. With GRO each can hold dozens of datagrams, so this need not be large.</summary>
    public const int Capacity = 32;

    private const int BufferSize = 65535;
    private const int NameSize = 128; // sockaddr_storage
    // UDP_GRO's segment size, IP_PKTINFO (an IPv4 datagram) and IPV6_PKTINFO (either, on the
    // dual-stack socket), and one spare int-sized message so an unexpected one does not truncate.
    private static readonly int ControlSize = (LibC.CmsgHdr.Space(sizeof(int)) * 2)
        + LibC.CmsgHdr.Space(sizeof(LibC.InPktInfo)) + LibC.CmsgHdr.Space(sizeof(LibC.In6PktInfo));
    private const int LocalSize = 16;

    private readonly byte* _data;
    private readonly byte* _names;
    private readonly byte* _controls;
    private readonly LibC.IoVec* _iovs;
    private readonly LibC.MMsgHdr* _messages;
    private readonly int[] _segmentSizes = new int[Capacity];
    private readonly byte[] _locals = new byte[Capacity * LocalSize];
    private readonly int[] _localLengths = new int[Capacity];
    private readonly int[] _localIfIndexes = new int[Capacity];
    private bool _disposed;

    public UdpReceiveBatch()
    {
        _data = (byte*)NativeMemory.Alloc((nuint)(Capacity * BufferSize));
        _names = (byte*)NativeMemory.AllocZeroed((nuint)(Capacity * NameSize));
        _controls = (byte*)NativeMemory.AllocZeroed((nuint)(Capacity * ControlSize));
        _iovs = (LibC.IoVec*)NativeMemory.AllocZeroed((nuint)(Capacity * sizeof(LibC.IoVec)));
        _messages = (LibC.MMsgHdr*)NativeMemory.AllocZeroed((nuint)(Capacity * sizeof(LibC.MMsgHdr)));
        for (var i = 0; i < Capacity; i++)
            _iovs[i] = new LibC.IoVec { Base = _data + (i * BufferSize), Length = BufferSize };
    }

    internal LibC.MMsgHdr* Messages => _messages;

    /// <summary>Sets every header up for the next read (the kernel overwrites the lengths).</summary>
    internal void Prepare()
    {
        for (var i = 0; i < Capacity; i++)
        {
            _messages[i] = new LibC.MMsgHdr
            {
                Header = new LibC.MsgHdr
                {
                    Name = _names + (i * NameSize),
                    NameLength = NameSize,
                    Iov = _iovs + i,
                    IovLength = 1,
                    Control = _controls + (i * ControlSize),
                    ControlLength = (nuint)ControlSize,
                },
            };
        }
    }

    /// <summary>After a read: reads each message's UDP_GRO segment size (its length when absent)
    /// and the local address it came to (none when absent). False for a message to skip (truncated).</summary>
    internal bool Complete(int i)
    {
        ref var message = ref _messages[i];
        var length = (int)message.Length;
        _segmentSizes[i] = length;
        _localLengths[i] = 0;
        _localIfIndexes[i] = 0;
        if ((message.Header.Flags & LibC.MSG_TRUNC) != 0 || length == 0)
            return false;
        var fromIpv4Info = false;
        var control = (byte*)message.Header.Control;
        var end = control + (int)message.Header.ControlLength;
        var cmsg = (LibC.CmsgHdr*)control;
        while ((byte*)cmsg + LibC.CmsgHdr.DataOffset <= end && (int)cmsg->Length >= LibC.CmsgHdr.DataOffset)
        {
            if (cmsg->Level == LibC.SOL_UDP && cmsg->Type == LibC.UDP_GRO)
            {
                var size = *(int*)((byte*)cmsg + LibC.CmsgHdr.DataOffset);
                if (size > 0)
                    _segmentSizes[i] = Math.Min(size, length);
            }
            else if (cmsg->Level == LibC.SOL_IP && cmsg->Type == LibC.IP_PKTINFO
                     && (int)cmsg->Length >= LibC.CmsgHdr.DataOffset + sizeof(LibC.InPktInfo))
            {
                // The address the kernel routed the datagram to (spec_dst): what a reply's source
                // must be. Preferred over IPV6_PKTINFO's mapped header address for IPv4.
                var info = (LibC.InPktInfo*)((byte*)cmsg + LibC.CmsgHdr.DataOffset);
                MemoryMarshal.Write(_locals.AsSpan(i * LocalSize), info->SpecificDestination);
                _localLengths[i] = 4;
                _localIfIndexes[i] = info->IfIndex;
                fromIpv4Info = true;
            }
            else if (cmsg->Level == LibC.SOL_IPV6 && cmsg->Type == LibC.IPV6_PKTINFO && !fromIpv4Info
                     && (int)cmsg->Length >= LibC.CmsgHdr.DataOffset + sizeof(LibC.In6PktInfo))
            {
                var info = (LibC.In6PktInfo*)((byte*)cmsg + LibC.CmsgHdr.DataOffset);
                var address = new ReadOnlySpan<byte>(info->Address, 16);
                var local = _locals.AsSpan(i * LocalSize, LocalSize);
                if (IsV4Mapped(address))
                {
                    address[12..].CopyTo(local);
                    _localLengths[i] = 4;
                }
                else
                {
                    address.CopyTo(local);
                    _localLengths[i] = 16;
                }
                _localIfIndexes[i] = info->IfIndex;
            }
            cmsg = (LibC.CmsgHdr*)((byte*)cmsg + LibC.CmsgHdr.Space((int)cmsg->Length - LibC.CmsgHdr.DataOffset));
        }
        return true;
    }

    /// <summary>Writes what recvmmsg with UDP_GRO would for message <paramref name="i"/>: two
    /// equal-sized datagrams back to back (benchmarks of what follows the read).</summary>
    internal void Load(int i, ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var data = new Span<byte>(_data + (i * BufferSize), BufferSize);
        first.CopyTo(data);
        second.CopyTo(data[first.Length..]);
        _messages[i].Length = (uint)(first.Length + second.Length);
        _segmentSizes[i] = first.Length;
    }

    public Span<byte> Data(int i) => new(_data + (i * BufferSize), (int)_messages[i].Length);

    public int SegmentSize(int i) => _segmentSizes[i];

    private static bool IsV4Mapped(ReadOnlySpan<byte> address) =>
        address[..10].IndexOfAnyExcept((byte)0) < 0 && address[10] == 0xff && address[11] == 0xff;

    /// <summary>The local address message <paramref name="i"/> came to (4 or 16 bytes; empty when
    /// the kernel did not say).</summary>
    public ReadOnlySpan<byte> LocalAddress(int i) => _locals.AsSpan(i * LocalSize, _localLengths[i]);

    /// <summary>The interface message <paramref name="i"/> came in on (0 when not known).</summary>
    public int LocalIfIndex(int i) => _localIfIndexes[i];

    /// <summary>The source's sockaddr bytes (sockaddr_in or sockaddr_in6).</summary>
    public ReadOnlySpan<byte> Source(int i) =>
        new(_names + (i * NameSize), Math.Min((int)_messages[i].Header.NameLength, NameSize));

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        NativeMemory.Free(_data);
        NativeMemory.Free(_names);
        NativeMemory.Free(_controls);
        NativeMemory.Free(_iovs);
        NativeMemory.Free(_messages);
    }
}
