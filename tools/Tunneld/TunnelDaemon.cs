using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Tunnel.Config;
using Tunnel.Transport;
using Tunnel.Uapi;

namespace Tunneld;

/// <summary>
/// The resources of one running interface, created in an order that fails early and cleanly: TUN
/// (the privilege check), its addresses, MTU, link and routes, then the UDP socket, then the UAPI
/// socket. Dispose undoes all of it in reverse and zeroes the keys. The protocol engine plugs in
/// between UDP and UAPI later; today a <see cref="PlaceholderDevice"/> answers the UAPI.
/// </summary>
internal sealed class TunnelDaemon(TunnelConfig config, string interfaceName, ILoggerFactory loggers) : IAsyncDisposable
{
    private readonly ILogger _log = loggers.CreateLogger("tunneld");
    private LinuxTun? _tun;
    private UdpBind? _udp;
    private UapiServer? _uapi;

    /// <summary>Creates everything. Throws <see cref="TunException"/>, <see cref="SocketException"/>
    /// or <see cref="UapiServerException"/> with a message for the user; the caller disposes.</summary>
    public void Start()
    {
        _tun = LinuxTun.Create(interfaceName);
        var setup = new InterfaceSetup(_tun.Name);
        setup.SetMtu(config.Interface.Mtu);
        foreach (var address in config.Interface.Addresses)
            setup.AddAddress(address);
        setup.SetUp();
        foreach (var prefix in RoutedPrefixes())
            setup.AddRoute(prefix);
        _log.LogInformation("interface {Name} up: mtu {Mtu}, {Addresses} address(es)", _tun.Name,
            config.Interface.Mtu, config.Interface.Addresses.Count);

        _udp = UdpBind.Open(config.Interface.ListenPort);
        if (config.Interface.FwMark != 0)
            _udp.SetFwMark(config.Interface.FwMark);
        _log.LogInformation("listening on UDP port {Port} ({Mode})", _udp.Port, _udp.DualStack ? "IPv4 and IPv6" : "IPv4 only");

        var udp = _udp;
        _uapi = new UapiServer(_tun.Name, new PlaceholderDevice(config, () => udp.Port), logger: loggers.CreateLogger("uapi"));
        _uapi.Start();
        _log.LogWarning("protocol engine not wired yet: the interface carries no traffic");
    }

    /// <summary>
    /// One route per distinct allowed IP. Default routes (/0) are left out: routing everything
    /// into the tunnel would include the tunnel's own UDP packets, and wg-quick avoids that loop
    /// with fwmark policy routing, which tunneld does not set up (see README).
    /// </summary>
    private IEnumerable<IPNetwork> RoutedPrefixes()
    {
        var seen = new HashSet<IPNetwork>();
        foreach (var peer in config.Peers)
        {
            foreach (var prefix in peer.AllowedIps)
            {
                if (prefix.PrefixLength == 0)
                {
                    _log.LogWarning("{Prefix}: default route not installed (needs policy routing; see README)", prefix);
                    continue;
                }
                if (seen.Add(prefix))
                    yield return prefix;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_uapi is not null)
            await _uapi.DisposeAsync();
        _udp?.Dispose();
        _tun?.Dispose(); // closing the descriptor deletes the interface and its routes
        config.Dispose();
        _log.LogInformation("stopped: socket and interface removed, keys zeroed");
    }
}
