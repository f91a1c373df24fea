using System.Security.Cryptography;
using Tunnel.Device;

namespace Tunnel.Uapi;

/// <summary>
/// The UAPI over a <see cref="TunnelDevice"/>: <c>get</c> reads the device and its peers, <c>set</c>
/// applies a request the parser has already validated completely. Both run under one lock, so a
/// get never sees half a set; the data path does not take it (the device guards itself).
/// </summary>
/// <remarks>
/// Set semantics are wireguard-go's <c>IpcSetOperation</c>, applied in request order: private key,
/// then <c>replace_peers</c>, then each peer's <c>remove</c> / <c>update_only</c>, preshared key,
/// endpoint, persistent keepalive and allowed IPs. The only step that can fail (binding a new port)
/// runs first, so a failed set changes nothing.
/// </remarks>
public sealed class DeviceUapi : IUapiDevice
{
    private readonly TunnelDevice _device;
    private readonly IUapiBind? _bind;
    private readonly IUapiExtraKeys? _extraKeys;
    private readonly Lock _lock = new();

    /// <param name="device">The device to read and configure.</param>
    /// <param name="bind">Where <c>listen_port</c> and <c>fwmark</c> go; null stores them on the
    /// device only (no socket, e.g. in tests).</param>
    /// <param name="extraKeys">Extra device-level keys for <c>get</c> (the fork watcher's state).</param>
    public DeviceUapi(TunnelDevice device, IUapiBind? bind = null, IUapiExtraKeys? extraKeys = null)
    {
        _device = device;
        _bind = bind;
        _extraKeys = extraKeys;
    }

    public UapiDeviceState GetState()
    {
        lock (_lock)
        {
            var state = new UapiDeviceState
            {
                ListenPort = _device.ListenPort,
                FwMark = _device.Fwmark,
            };
            if (_device.HasPrivateKey)
            {
                state.PrivateKey = new byte[HexKey.KeyLength];
                _device.CopyPrivateKey(state.PrivateKey);
            }
            _extraKeys?.AddExtraKeys(state.ExtraKeys);
            foreach (var peer in _device.Peers)
            {
                var publicKey = new byte[HexKey.KeyLength];
                peer.CopyPublicKey(publicKey);
                var entry = new UapiPeerState
                {
                    PublicKey = publicKey,
                    PresharedKey = CopyPresharedKey(peer),
                    Endpoint = peer.Endpoint?.ToIPEndPoint(),
                    LastHandshakeUnixNanos = peer.LastHandshakeTime is { } when
                        ? (when - DateTimeOffset.UnixEpoch).Ticks * 100
                        : 0,
                    TxBytes = peer.TxBytes,
                    RxBytes = peer.RxBytes,
                    PersistentKeepaliveInterval = peer.PersistentKeepaliveInterval,
                };
                entry.AllowedIps.AddRange(_device.AllowedIps.EntriesForPeer(peer));
                state.Peers.Add(entry);
            }
            return state;
        }
    }

    /// <summary>A copy of the peer's preshared key, or null (written as zeros) when it has none:
    /// most of a big hub's peers, which need no 56-byte array each in the snapshot.</summary>
    private static byte[]? CopyPresharedKey(Peer peer)
    {
        Span<byte> psk = stackalloc byte[HexKey.KeyLength];
        try
        {
            peer.CopyPresharedKey(psk);
            return psk.ContainsAnyExcept((byte)0) ? psk.ToArray() : null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(psk);
        }
    }

    public int ApplySet(UapiSetRequest request)
    {
        lock (_lock)
        {
            if (request.ListenPort is not null || request.FwMark is not null)
            {
                var port = request.ListenPort ?? _device.ListenPort;
                var mark = request.FwMark ?? _device.Fwmark;
                if (_bind is not null)
                {
                    var errno = _bind.Update(port, mark, out port);
                    if (errno != UapiErrno.Ok)
                        return errno;
                }
                _device.ListenPort = port;
                _device.Fwmark = mark;
            }

            if (request.PrivateKey is { } privateKey)
                _device.SetPrivateKey(privateKey);

            if (request.ReplacePeers)
                _device.RemoveAllPeers();

            Span<byte> ownPublicKey = stackalloc byte[HexKey.KeyLength];
            var hasOwnKey = _device.HasPrivateKey;
            if (hasOwnKey)
                _device.CopyPublicKey(ownPublicKey);

            foreach (var update in request.Peers)
            {
                // wireguard-go ignores a peer that is this device itself: a handshake with oneself
                // would only confuse the index table.
                if (hasOwnKey && ownPublicKey.SequenceEqual(update.PublicKey))
                    continue;
                if (update.Remove)
                {
                    _device.RemovePeer(update.PublicKey);
                    continue;
                }
                var peer = _device.FindPeer(update.PublicKey);
                if (peer is null)
                {
                    if (update.UpdateOnly)
                        continue;
                    peer = _device.AddPeer(update.PublicKey);
                }
                Apply(peer, update);
            }
            return UapiErrno.Ok;
        }
    }

    private void Apply(Peer peer, UapiPeerUpdate update)
    {
        if (update.PresharedKey is { } psk)
            peer.SetPresharedKey(psk);
        if (update.Endpoint is { } endpoint)
            peer.Endpoint = Endpoint.FromIPEndPoint(endpoint);

        // Turning persistent keepalive on sends one at once (wireguard-go's pkaOn): with no session
        // yet that starts the handshake, so a peer behind NAT becomes reachable without waiting.
        var keepaliveTurnedOn = false;
        if (update.PersistentKeepaliveInterval is { } interval)
        {
            keepaliveTurnedOn = peer.PersistentKeepaliveInterval == 0 && interval != 0;
            peer.PersistentKeepaliveInterval = interval;
        }

        if (update.ReplaceAllowedIps)
            _device.AllowedIps.RemoveByPeer(peer);
        foreach (var change in update.AllowedIps)
        {
            if (change.Remove)
                _device.AllowedIps.Remove(change.Prefix, peer);
            else
                _device.AllowedIps.Insert(change.Prefix, peer);
        }

        if (keepaliveTurnedOn)
            peer.SendKeepalive();
    }
}
