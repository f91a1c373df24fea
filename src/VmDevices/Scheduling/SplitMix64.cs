namespace VmDevices;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator for simulation choices such as
/// tie-breaking. Not cryptographic, and never used for anything a guest treats as secret.
/// </summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
