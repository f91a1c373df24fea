namespace ForkNotify;

public sealed class KmsgSource : IForkSource
{
    public KmsgSource(string path = "/dev/kmsg") { }

    public string Name => "KmsgSource";

    public ForkSourceAvailability Probe() => ForkSourceAvailability.NotAvailable("not implemented yet");

    public void Start(Action<ForkEvent> onFork) => throw new InvalidOperationException("not implemented yet");

    public void Dispose() { }
}
