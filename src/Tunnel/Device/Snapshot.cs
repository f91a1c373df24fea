namespace Tunnel.Device;

public sealed partial class TunnelDevice
{
    public TunnelDeviceState CaptureState() => throw new NotImplementedException();

    public void RestoreState(TunnelDeviceState state) => throw new NotImplementedException();
}
