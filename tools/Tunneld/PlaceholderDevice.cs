using Tunnel.Config;
using Tunnel.Uapi;

namespace Tunneld;

/// <summary>
/// Stands in for the protocol engine until it is wired: answers <c>get</c> from the loaded
/// configuration (so <c>wg show</c> works) and refuses <c>set</c> with -EIO, because nothing
/// could act on it yet. Replace with the real device; nothing else in the daemon changes.
/// </summary>
internal sealed class PlaceholderDevice(TunnelConfig config, Func<ushort> listenPort) : IUapiDevice
{
    public UapiDeviceState GetState()
    {
        var state = new UapiDeviceState
        {
            PrivateKey = config.Interface.PrivateKey.ToArray(),
            ListenPort = listenPort(),
            FwMark = config.Interface.FwMark,
        };
        foreach (var peer in config.Peers)
        {
            var entry = new UapiPeerState
            {
                PublicKey = peer.PublicKey.ToArray(),
                PresharedKey = peer.PresharedKey?.ToArray(),
                Endpoint = peer.Endpoint,
                PersistentKeepaliveInterval = peer.PersistentKeepalive,
            };
            entry.AllowedIps.AddRange(peer.AllowedIps);
            state.Peers.Add(entry);
        }
        return state;
    }

    public int ApplySet(UapiSetRequest request) => UapiErrno.IO;
}
