using Tunnel.Config;
using Tunnel.Crypto;

namespace Tunnel.Uapi;

/// <summary>
/// A configuration file as one UAPI set request, so a file goes through the same validated,
/// all-or-nothing path as <c>wg</c>: <see cref="Initial"/> at start (<c>wg setconf</c> on an empty
/// device), <see cref="Sync"/> on a reload (<c>wg syncconf</c>: peers that stay keep their
/// sessions, peers no longer in the file are removed, each peer's allowed IPs become the file's).
/// </summary>
public static class ConfigSetRequest
{
    /// <summary>The file on a device that has nothing yet (listen port and fwmark are bound by the
    /// caller). A config without a private key (the empty device of <c>tunneld IFNAME</c>) sets none.</summary>
    public static UapiSetRequest Initial(TunnelConfig config)
    {
        var request = new UapiSetRequest();
        if (config.Interface.PrivateKey.Length != 0)
            request.PrivateKey = config.Interface.PrivateKey.ToArray();
        AddPeers(request, config, replaceAllowedIps: false);
        return request;
    }

    /// <summary>
    /// What makes <paramref name="current"/> equal the file, as <c>wg syncconf</c> computes it:
    /// key, port and mark; a removal for each current peer the file lacks; every file peer with its
    /// allowed IPs replaced and its preshared key and keepalive set (zero when the file has none).
    /// </summary>
    public static UapiSetRequest Sync(TunnelConfig config, UapiDeviceState current)
    {
        var request = new UapiSetRequest
        {
            PrivateKey = config.Interface.PrivateKey.Length != 0 ? config.Interface.PrivateKey.ToArray() : new byte[HexKey.KeyLength],
            // No port in the file (0) keeps the one bound now, as wg syncconf does for a file without ListenPort.
            ListenPort = config.Interface.ListenPort != 0 ? config.Interface.ListenPort : null,
            FwMark = config.Interface.FwMark,
        };
        // A set of the file's keys: one lookup per current peer, not a scan of the file (issue 12).
        var inFile = new HashSet<PublicKey>(config.Peers.Count);
        foreach (var peer in config.Peers)
            inFile.Add(new PublicKey(peer.PublicKey));
        foreach (var peer in current.Peers)
        {
            if (!inFile.Contains(new PublicKey(peer.PublicKey)))
                request.Peers.Add(new UapiPeerUpdate(peer.PublicKey.ToArray()) { Remove = true });
        }
        AddPeers(request, config, replaceAllowedIps: true);
        return request;
    }

    private static void AddPeers(UapiSetRequest request, TunnelConfig config, bool replaceAllowedIps)
    {
        foreach (var peer in config.Peers)
        {
            var update = new UapiPeerUpdate(peer.PublicKey.ToArray())
            {
                PresharedKey = peer.PresharedKey?.ToArray() ?? (replaceAllowedIps ? new byte[HexKey.KeyLength] : null),
                Endpoint = peer.Endpoint,
                PersistentKeepaliveInterval = peer.PersistentKeepalive,
                ReplaceAllowedIps = replaceAllowedIps,
            };
            foreach (var prefix in peer.AllowedIps)
                update.AllowedIps.Add(new UapiAllowedIpChange(prefix, Remove: false));
            request.Peers.Add(update);
        }
    }
}
