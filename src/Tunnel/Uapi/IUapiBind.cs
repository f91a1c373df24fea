namespace Tunnel.Uapi;

/// <summary>
/// The host side of <c>listen_port</c> and <c>fwmark</c>: the UDP socket belongs to the running
/// interface, not to the protocol engine, so a UAPI set reaches it through this (wireguard-go's
/// <c>BindUpdate</c>).
/// </summary>
public interface IUapiBind
{
    /// <summary>
    /// Moves the socket to <paramref name="listenPort"/> (0 = any free port) when it differs from
    /// the bound one, and marks outgoing packets with <paramref name="fwmark"/> (0 = none). Either
    /// everything takes effect or nothing: on failure the old socket stays as it was. Returns
    /// <see cref="UapiErrno.Ok"/> with the port actually bound, or a negative errno
    /// (<see cref="UapiErrno.PortInUse"/>, <see cref="UapiErrno.IO"/>).
    /// </summary>
    int Update(ushort listenPort, uint fwmark, out ushort boundPort);
}
