namespace ForkNotify;

public sealed class UeventSource : IForkSource
{
    public UeventSource(uint? allowedSenderPortId = null) { }

    public string Name => "UeventSource";

    public ForkSourceAvailability Probe() => ForkSourceAvailability.NotAvailable("not implemented yet");

    public void Start(Action<ForkEvent> onFork) => throw new InvalidOperationException("not implemented yet");

    public void Dispose() { }
}
