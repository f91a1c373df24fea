namespace Tunnel.Uapi;

/// <summary>
/// The negative errno values a UAPI reply carries in <c>errno=</c>, the ones wireguard-go's
/// <c>ipc</c> package uses, so <c>wg</c> prints the same strerror for the same mistake.
/// </summary>
public static class UapiErrno
{
    public const int Ok = 0;

    /// <summary>-EIO: the device could not do what was asked.</summary>
    public const int IO = -5;

    /// <summary>-EINVAL: a key or value is wrong.</summary>
    public const int Invalid = -22;

    /// <summary>-EPROTO: wireguard-go's code for a line that is not <c>key=value</c>. Not used by this
    /// server (every bad set line is -EINVAL); kept so tests can say what they exclude.</summary>
    public const int Protocol = -71;

    /// <summary>-EADDRINUSE: listen_port is taken.</summary>
    public const int PortInUse = -98;

    /// <summary>wireguard-go's catch-all (ENOANO) for an error it did not classify.</summary>
    public const int Unknown = -55;
}
