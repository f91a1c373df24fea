namespace ForkNotify;

/// <summary>
/// A pull-model VM generation counter: a word a hot path reads in-line (one load, no syscall) and
/// compares with the value it saw when it derived its keys. Any change means "the VM may have been
/// cloned since". Implementations: <see cref="VmGeneration"/>, <see cref="VmClockSource"/>,
/// and device counters in VmDevices.
/// </summary>
public interface IGenerationCounter
{
    ulong Read();
}
