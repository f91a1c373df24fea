using System.Buffers;
using System.Security.Cryptography;

namespace Tunnel.Device;

/// <summary>
/// Packets a peer holds while it has no usable session (kernel staged_packet_queue): a bounded
/// FIFO of copies in pooled buffers; when full, the oldest packet is dropped, as the kernel does.
/// A buffer is zeroed before it goes back to the shared pool: it held plaintext. Thread-safe.
/// </summary>
internal sealed class StagedPackets
{
    private readonly Lock _lock = new();
    private readonly byte[]?[] _buffers;
    private readonly int[] _lengths;
    private int _head;
    private int _count;

    public StagedPackets(int capacity)
    {
        _buffers = new byte[capacity][];
        _lengths = new int[capacity];
    }

    public int Count { get { lock (_lock) return _count; } }

    /// <summary>Copies <paramref name="packet"/> in; drops the oldest packet if full.</summary>
    public void Enqueue(ReadOnlySpan<byte> packet)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(packet.Length, 1));
        packet.CopyTo(buffer);
        byte[]? dropped = null;
        int droppedLength = 0;
        lock (_lock)
        {
            if (_count == _buffers.Length)
            {
                dropped = _buffers[_head];
                droppedLength = _lengths[_head];
                _buffers[_head] = null;
                _head = (_head + 1) % _buffers.Length;
                _count--;
            }
            int tail = (_head + _count) % _buffers.Length;
            _buffers[tail] = buffer;
            _lengths[tail] = packet.Length;
            _count++;
        }
        if (dropped is not null)
            Release(dropped, droppedLength);
    }

    /// <summary>Takes the oldest packet; the caller returns <paramref name="buffer"/> with <see cref="Release"/> or <see cref="PutBack"/>.</summary>
    public bool TryDequeue(out byte[] buffer, out int length)
    {
        lock (_lock)
        {
            if (_count == 0)
            {
                buffer = null!;
                length = 0;
                return false;
            }
            buffer = _buffers[_head]!;
            length = _lengths[_head];
            _buffers[_head] = null;
            _head = (_head + 1) % _buffers.Length;
            _count--;
            return true;
        }
    }

    /// <summary>
    /// Puts a packet taken with <see cref="TryDequeue"/> back at the head, so it still leaves before
    /// the ones staged after it (the kernel splices unsent packets back to the front). If the
    /// queue filled up meanwhile it is the oldest, and is dropped as the oldest would be.
    /// </summary>
    public void PutBack(byte[] buffer, int length)
    {
        lock (_lock)
        {
            if (_count < _buffers.Length)
            {
                _head = (_head + _buffers.Length - 1) % _buffers.Length;
                _buffers[_head] = buffer;
                _lengths[_head] = length;
                _count++;
                return;
            }
        }
        Release(buffer, length);
    }

    /// <summary>Zeroes the packet taken with <see cref="TryDequeue"/> and returns its buffer to the pool.</summary>
    public static void Release(byte[] buffer, int length)
    {
        CryptographicOperations.ZeroMemory(buffer.AsSpan(0, length));
        ArrayPool<byte>.Shared.Return(buffer);
    }

    /// <summary>Copies of the staged packets, oldest first (for a VM-snapshot capture).</summary>
    public byte[][] CopyAll()
    {
        lock (_lock)
        {
            var copies = new byte[_count][];
            for (int i = 0; i < _count; i++)
            {
                int at = (_head + i) % _buffers.Length;
                copies[i] = _buffers[at].AsSpan(0, _lengths[at]).ToArray();
            }
            return copies;
        }
    }

    /// <summary>Drops every staged packet.</summary>
    public void Clear()
    {
        while (TryDequeue(out byte[] buffer, out int length))
            Release(buffer, length);
    }
}
