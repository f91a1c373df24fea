using System.Buffers.Binary;
using System.Security.Cryptography;
using ForkNotify;

namespace VmDevices;

/// <summary>
/// Host-side randomness for deterministic simulation: SHA-256 in counter mode over a seed, so the
/// VM IDs a VMM hands out and the bytes its virtio-rng returns replay from the scenario seed. Only
/// for the simulated host; real-time mode uses the OS generator.
/// </summary>
public sealed class DeterministicEntropy : IRandomGenerator
{
    private readonly byte[] _input = new byte[16];
    private readonly byte[] _block = new byte[32];
    private int _used = 32;

    public DeterministicEntropy(ulong seed) =>
        BinaryPrimitives.WriteUInt64LittleEndian(_input, seed);

    public void Fill(Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            if (_used == _block.Length)
            {
                ulong counter = BinaryPrimitives.ReadUInt64LittleEndian(_input.AsSpan(8));
                BinaryPrimitives.WriteUInt64LittleEndian(_input.AsSpan(8), counter + 1);
                SHA256.HashData(_input, _block);
                _used = 0;
            }
            int n = Math.Min(destination.Length, _block.Length - _used);
            _block.AsSpan(_used, n).CopyTo(destination);
            _used += n;
            destination = destination[n..];
        }
    }

    /// <summary>Convenience for simulation choices: the next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        Span<byte> b = stackalloc byte[8];
        Fill(b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }
}
