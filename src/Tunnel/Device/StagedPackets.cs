using System.Buffers;
using System.Security.Cryptography;

namespace Tunnel.Device;

/// <summary>
/// Packets a peer holds while it has no usable session (kernel staged_packet_queue): a bounded
/// FIFO of copies in pooled buffers; when full, the oldest packet is dropped, as the kernel does.
/// A buffer is zeroed before it goes back to the shared pool: it held plaintext. Thread-safe.
/// </summary>
/// <remarks>
/// The ring (2 KiB for 128 slots) exists only while the peer has something staged or has had
/// since the last <see cref="Clear"/>: most of 100,000 idle peers never stage a packet, and an
/// eager ring was half of an idle peer's memory (issue 12).
/// </remarks>
internal sealed class StagedPackets
{
    private readonly Lock _lock = new();
    private readonly int _capacity;
    private Slot[]? _ring;
    private int _head;
    private int _count;

    private struct Slot
    {
        public byte[]? Buffer;
        public int Length;
    }

    public StagedPackets(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _capacity = capacity;
    }

    public int Count { get { lock (_lock) return _count; } }

    /// <summary>True while the ring is allocated (tests of the lazy footprint).</summary>
    internal bool HasRing { get { lock (_lock) return _ring is not null; } }

    /// <summary>Copies <paramref name="packet"/> in; drops the oldest packet if full.</summary>
    public void Enqueue(ReadOnlySpan<byte> packet)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(Math.Max(packet.Length, 1));
        packet.CopyTo(buffer);
        Slot dropped = default;
        lock (_lock)
        {
            Slot[] ring = _ring ??= new Slot[_capacity];
            if (_count == ring.Length)
            {
                dropped = ring[_head];
                ring[_head] = default;
                _head = (_head + 1) % ring.Length;
                _count--;
            }
            int tail = (_head + _count) % ring.Length;
            ring[tail] = new Slot { Buffer = buffer, Length = packet.Length };
            _count++;
        }
        if (dropped.Buffer is not null)
            Release(dropped.Buffer, dropped.Length);
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
            Slot[] ring = _ring!;
            buffer = ring[_head].Buffer!;
            length = ring[_head].Length;
            ring[_head] = default;
            _head = (_head + 1) % ring.Length;
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
            Slot[] ring = _ring ??= new Slot[_capacity]; // a Clear in between may have dropped it
            if (_count < ring.Length)
            {
                _head = (_head + ring.Length - 1) % ring.Length;
                ring[_head] = new Slot { Buffer = buffer, Length = length };
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
                Slot slot = _ring![(_head + i) % _ring.Length];
                copies[i] = slot.Buffer.AsSpan(0, slot.Length).ToArray();
            }
            return copies;
        }
    }

    /// <summary>Drops every staged packet, and the ring with them.</summary>
    public void Clear()
    {
        while (TryDequeue(out byte[] buffer, out int length))
            Release(buffer, length);
        lock (_lock)
        {
            if (_count == 0)
            {
                _ring = null;
                _head = 0;
            }
        }
    }
}
