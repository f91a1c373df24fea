namespace ForkNotify;

/// <summary>
/// The guest's exported VM generation (the <c>rng_vm_generation</c> of the seed design): bumped by
/// the fork path before the chain runs, read by hot paths with exactly one volatile read.
/// </summary>
public sealed class VmGeneration : IGenerationCounter
{
    private long _value;

    public VmGeneration(ulong initial = 0) => _value = (long)initial;

    /// <summary>The current generation: one <see cref="Volatile.Read(ref long)"/>.</summary>
    public ulong Current => (ulong)Volatile.Read(ref _value);

    /// <summary>Increments the generation and returns the new value.</summary>
    public ulong Advance() => (ulong)Interlocked.Increment(ref _value);

    /// <summary>Sets the generation (restore of a captured guest).</summary>
    public void Set(ulong value) => Volatile.Write(ref _value, (long)value);

    public ulong Read() => Current;
}
