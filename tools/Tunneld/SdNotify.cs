using System.Net.Sockets;
using System.Text;

namespace Tunneld;

/// <summary>
/// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram such as
/// <c>READY=1</c> to the AF_UNIX socket named by <c>NOTIFY_SOCKET</c>. A name starting with '@' is
/// in the abstract namespace (the '@' stands for a leading NUL byte). Without the variable, or when
/// sending fails, nothing happens: notification is advisory.
/// </summary>
internal static class SdNotify
{
    public static bool Send(string state, string? socketName = null)
    {
        socketName ??= Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(socketName) || (socketName[0] != '/' && socketName[0] != '@'))
            return false;
        if (socketName[0] == '@')
            socketName = "\0" + socketName[1..];
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            socket.SendTo(Encoding.UTF8.GetBytes(state), new UnixDomainSocketEndPoint(socketName));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
