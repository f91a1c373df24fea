using ForkNotify;
using VmDevices;

namespace ForkSim;

/// <summary>
/// A guest's getrandom in an adversarial run: before the snapshot point it continues the source's
/// stream (a clone re-executing the source's step sees what the source saw); from the flip on it
/// is the guest's own stream, or, in <see cref="HostEntropyModel.SharedUntilKernelReseed"/>, one
/// stream every sibling clone shares.
/// </summary>
internal sealed class ModelEntropy : IRandomGenerator
{
    private ulong _seed;
    private ulong _position;

    public ModelEntropy(ulong seed) => _seed = seed;

    /// <summary>A copy that continues exactly where this one is.</summary>
    public ModelEntropy Fork() => new(_seed) { _position = _position };

    /// <summary>From now on: the stream of <paramref name="seed"/>, from its start.</summary>
    public void SwitchTo(ulong seed)
    {
        _seed = seed;
        _position = 0;
    }

    public void Fill(Span<byte> destination)
    {
        var stream = new DeterministicEntropy(_seed * 0x9E3779B97F4A7C15UL + _position++);
        stream.Fill(destination);
    }
}

/// <summary>/dev/hwrng of one guest: host bytes no snapshot holds (per guest).</summary>
internal sealed class ModelHwRng(ulong seed) : ICloneUniqueInput
{
    private ulong _reads;

    public string Name => "hwrng (model)";

    public bool TryRead(Span<byte> digest)
    {
        new DeterministicEntropy(seed ^ 0x6877726e67UL ^ (_reads++ << 32)).Fill(digest);
        return true;
    }
}
