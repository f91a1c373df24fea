using ForkNotify;

namespace Tunnel.Tests.Noise;

/// <summary>A "random" generator that hands out fixed bytes, to make a handshake deterministic.</summary>
internal sealed class FixedRandom(params byte[][] outputs) : IRandomGenerator
{
    private int _next;

    public void Fill(Span<byte> destination)
    {
        byte[] output = outputs[_next++ % outputs.Length];
        if (output.Length != destination.Length)
            throw new InvalidOperationException($"asked for {destination.Length} bytes, have {output.Length}");
        output.CopyTo(destination);
    }
}

/// <summary>A seeded generator for tests that want varied but reproducible bytes.</summary>
internal sealed class SeededRandom(int seed) : IRandomGenerator
{
    private readonly Random _random = new(seed);

    public void Fill(Span<byte> destination) => _random.NextBytes(destination);
}
