using System.Runtime.InteropServices;

namespace Tunnel.Transport;

/// <summary>
/// Room for one recvmmsg(2): <see cref="Capacity"/> messages, each with a 64 KiB buffer (with
/// UDP_GRO one message can be a run of same-sized datagrams from one source), its source address
/// and its control data. Native memory, so the kernel writes straight into it and nothing moves
/// or is allocated per read; one owner thread; <see cref="Dispose"/> frees it.
/// After <see cref="UdpBind.ReceiveBatch"/>, message <c>i</c> is <see cref="Data"/>(i), cut into
/// datagrams of <see cref="SegmentSize"/>(i) bytes, from <see cref="Source"/>(i).
/// </summary>
internal sealed unsafe class UdpReceiveBatch : IDisposable
{
    /// <summary>Messages per read. With GRO each can hold dozens of datagrams, so this need not be large.</summary>
    public const int Capacity = 32;

    private const int BufferSize = 65535;
    private const int NameSize = 128; // sockaddr_storage
    private static readonly int ControlSize = LibC.CmsgHdr.Space(sizeof(int)) * 2;

    private readonly byte* _data;
    private readonly byte* _names;
    private readonly byte* _controls;
    private readonly LibC.IoVec* _iovs;
    private readonly LibC.MMsgHdr* _messages;
    private readonly int[] _segmentSizes = new int[Capacity];
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

    /// <summary>After a read: reads each message's UDP_GRO segment size (its length when absent).
    /// False for a message to skip (truncated).</summary>
    internal bool Complete(int i)
    {
        ref var message = ref _messages[i];
        var length = (int)message.Length;
        _segmentSizes[i] = length;
        if ((message.Header.Flags & LibC.MSG_TRUNC) != 0 || length == 0)
            return false;
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
            cmsg = (LibC.CmsgHdr*)((byte*)cmsg + LibC.CmsgHdr.Space((int)cmsg->Length - LibC.CmsgHdr.DataOffset));
        }
        return true;
    }

    public Span<byte> Data(int i) => new(_data + (i * BufferSize), (int)_messages[i].Length);

    public int SegmentSize(int i) => _segmentSizes[i];

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
