using Tunnel.Config;
using Tunnel.Uapi;

namespace Tunnel.Transport;

/// <summary>
/// The configuration file as one UAPI set request: one code path for configuration, with wg
/// setconf's semantics (persistent keepalive sends one at once). Port and fwmark are left out:
/// the interface binds them before the engine exists.
/// </summary>
internal static class ConfigSetRequest
{
    public static UapiSetRequest From(TunnelConfig config)
    {
        var request = new UapiSetRequest { PrivateKey = config.Interface.PrivateKey.ToArray() };
        foreach (var peer in config.Peers)
        {
            var update = new UapiPeerUpdate(peer.PublicKey.ToArray())
            {
                PresharedKey = peer.PresharedKey?.ToArray(),
                Endpoint = peer.Endpoint,
                PersistentKeepaliveInterval = peer.PersistentKeepalive,
            };
            foreach (var prefix in peer.AllowedIps)
                update.AllowedIps.Add(new UapiAllowedIpChange(prefix, Remove: false));
            request.Peers.Add(update);
        }
        return request;
    }
}
