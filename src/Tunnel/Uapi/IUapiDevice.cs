namespace Tunnel.Uapi;

/// <summary>
/// What the UAPI server needs from a device. The server serializes calls (one UAPI operation at a
/// time, like wireguard-go's ipcMutex), but the device must still guard against its own data path.
/// </summary>
public interface IUapiDevice
{
    /// <summary>A snapshot of the configuration and counters for <c>get=1</c>.</summary>
    UapiDeviceState GetState();

    /// <summary>
    /// Applies a fully validated request. Returns <see cref="UapiErrno.Ok"/>, or a negative errno
    /// (e.g. <see cref="UapiErrno.PortInUse"/>) having changed nothing.
    /// </summary>
    int ApplySet(UapiSetRequest request);
}
