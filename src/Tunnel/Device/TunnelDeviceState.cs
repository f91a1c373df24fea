namespace Tunnel.Device;

/// <summary>
/// Everything a VM snapshot copies of a <see cref="TunnelDevice"/> (see
/// <see cref="TunnelDevice.CaptureState"/>). Holds key material: dispose it to zero that.
/// </summary>
public sealed class TunnelDeviceState : IDisposable
{
    public void Dispose()
    {
    }
}
