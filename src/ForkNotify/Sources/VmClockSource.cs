namespace ForkNotify;

public sealed class VmClockSource : IForkSource, IGenerationCounter
{
    public VmClockSource(string path = "/dev/vmclock0", TimeSpan? pollInterval = null) { }

    public ulong Read() => 0;

    public string Name => "VmClockSource";

    public ForkSourceAvailability Probe() => ForkSourceAvailability.NotAvailable("not implemented yet");

    public void Start(Action<ForkEvent> onFork) => throw new InvalidOperationException("not implemented yet");

    public void Dispose() { }
}
