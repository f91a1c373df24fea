using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Tunnel.Device;
using Tunnel.Uapi;

namespace Tunnel.Transport;

/// <summary>
/// A UAPI <c>listen_port</c> / <c>fwmark</c> change carried out on the interface's socket
/// (wireguard-go's BindUpdate and BindSetMark): the new socket is opened before the old one is
/// let go, so a port that is taken changes nothing.
/// </summary>
internal sealed class BindUpdate(InterfaceIo io, TunnelDevice device, ILogger log) : IUapiBind
{
    public int Update(ushort listenPort, uint fwmark, out ushort boundPort)
    {
        var old = io.Bind;
        boundPort = old.Port;
        try
        {
            if (listenPort == old.Port)
            {
                // wg setconf repeats the port every time: nothing to do unless the mark changed.
                if (fwmark != device.Fwmark)
                    old.SetFwMark(fwmark);
                return UapiErrno.Ok;
            }
            // Open the new socket before letting go of the old one: if the port is taken, nothing
            // changed. The receive thread notices the swap when its read on the old socket ends.
            var fresh = UdpBind.Open(listenPort);
            try
            {
                if (fwmark != 0)
                    fresh.SetFwMark(fwmark);
            }
            catch
            {
                fresh.Dispose();
                throw;
            }
            io.Bind = fresh;
            old.Dispose();
            boundPort = fresh.Port;
            log.LogInformation("listening on UDP port {Port}", fresh.Port);
            return UapiErrno.Ok;
        }
        catch (SocketException e)
        {
            log.LogWarning("cannot move to UDP port {Port}: {Error}", listenPort, e.SocketErrorCode);
            return e.SocketErrorCode == SocketError.AddressAlreadyInUse ? UapiErrno.PortInUse : UapiErrno.IO;
        }
    }
}
