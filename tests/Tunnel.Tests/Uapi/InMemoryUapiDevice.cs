using System.Net;
using Tunnel.Uapi;

namespace Tunnel.Tests.Uapi;

/// <summary>
/// A test double for the device behind the UAPI: configuration held in plain fields, set applied
/// with wireguard-go's semantics, so the real wg tool can drive it. Counts ApplySet calls so tests
/// can prove a bad request never reached the device.
/// </summary>
internal sealed class InMemoryUapiDevice : IUapiDevice
{
    private readonly object _lock = new();

    public byte[]? PrivateKey;
    public ushort ListenPort;
    public uint FwMark;
    public readonly List<Peer> Peers = [];
    public readonly List<KeyValuePair<string, string>> ExtraKeys = [];
    public int ApplyCount;
    public int ApplyResult = UapiErrno.Ok;

    internal sealed class Peer
    {
        public required byte[] PublicKey;
        public byte[]? PresharedKey;
        public IPEndPoint? Endpoint;
        public ushort Keepalive;
        public long LastHandshakeUnixNanos;
        public ulong Tx, Rx;
        public readonly List<IPNetwork> AllowedIps = [];
    }

    public UapiDeviceState GetState()
    {
        lock (_lock)
        {
            var state = new UapiDeviceState
            {
                PrivateKey = PrivateKey?.ToArray(),
                ListenPort = ListenPort,
                FwMark = FwMark,
            };
            state.ExtraKeys.AddRange(ExtraKeys);
            foreach (var p in Peers)
            {
                var peer = new UapiPeerState
                {
                    PublicKey = p.PublicKey.ToArray(),
                    PresharedKey = p.PresharedKey?.ToArray(),
                    Endpoint = p.Endpoint,
                    LastHandshakeUnixNanos = p.LastHandshakeUnixNanos,
                    TxBytes = p.Tx,
                    RxBytes = p.Rx,
                    PersistentKeepaliveInterval = p.Keepalive,
                };
                peer.AllowedIps.AddRange(p.AllowedIps);
                state.Peers.Add(peer);
            }
            return state;
        }
    }

    public int ApplySet(UapiSetRequest request)
    {
        lock (_lock)
        {
            ApplyCount++;
            if (ApplyResult != UapiErrno.Ok)
                return ApplyResult;
            if (request.PrivateKey is { } key)
                PrivateKey = key.AsSpan().ContainsAnyExcept((byte)0) ? key.ToArray() : null;
            if (request.ListenPort is { } port)
                ListenPort = port;
            if (request.FwMark is { } mark)
                FwMark = mark;
            if (request.ReplacePeers)
                Peers.Clear();
            foreach (var update in request.Peers)
            {
                var peer = Peers.FirstOrDefault(p => p.PublicKey.AsSpan().SequenceEqual(update.PublicKey));
                if (update.Remove)
                {
                    if (peer is not null)
                        Peers.Remove(peer);
                    continue;
                }
                if (peer is null)
                {
                    if (update.UpdateOnly)
                        continue;
                    peer = new Peer { PublicKey = update.PublicKey.ToArray() };
                    Peers.Add(peer);
                }
                if (update.PresharedKey is { } psk)
                    peer.PresharedKey = psk.AsSpan().ContainsAnyExcept((byte)0) ? psk.ToArray() : null;
                if (update.Endpoint is { } endpoint)
                    peer.Endpoint = endpoint;
                if (update.PersistentKeepaliveInterval is { } keepalive)
                    peer.Keepalive = keepalive;
                if (update.ReplaceAllowedIps)
                    peer.AllowedIps.Clear();
                foreach (var change in update.AllowedIps)
                {
                    // An allowed IP belongs to one peer only, as in the real trie.
                    foreach (var other in Peers)
                        other.AllowedIps.Remove(change.Prefix);
                    if (!change.Remove)
                        peer.AllowedIps.Add(change.Prefix);
                }
            }
            return UapiErrno.Ok;
        }
    }
}
