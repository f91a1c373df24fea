namespace ForkNotify;

public sealed class SysGenIdSource : IForkSource
{
    public SysGenIdSource(string path = "/dev/sysgenid", string? ackPath = null) { }

    public string Name => "SysGenIdSource";

    public ForkSourceAvailability Probe() => ForkSourceAvailability.NotAvailable("not implemented yet");

    public void Start(Action<ForkEvent> onFork) => throw new InvalidOperationException("not implemented yet");

    public void Dispose() { }
}
