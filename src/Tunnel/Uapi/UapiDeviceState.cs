using System.Net;

namespace Tunnel.Uapi;

/// <summary>
/// A snapshot of the device for a UAPI <c>get</c>: plain data the device fills in under its own
/// locks; the server formats it after the locks are released. The key arrays are the caller's
/// copies: <see cref="Dispose"/> zeroes them (the server does once the reply is written).
/// </summary>
public sealed class UapiDeviceState : IDisposable
{
    /// <summary>32 bytes, or null when the device has no private key (then no line is written).</summary>
    public byte[]? PrivateKey { get; set; }

    /// <summary>0 when not listening (then no line is written, like wireguard-go).</summary>
    public ushort ListenPort { get; set; }

    /// <summary>0 means off (then no line is written).</summary>
    public uint FwMark { get; set; }

    /// <summary>
    /// Extra device-level keys written after <c>fwmark</c> and before the first peer (for example the
    /// fork watcher's state). <c>wg</c> skips any <c>key=value</c> line whose key it does not know, at
    /// device or peer level (wireguard-tools <c>ipc-uapi.h</c>: the parse is an if/else chain with no
    /// final else), so these are safe as long as the key is not one wg parses: see
    /// <see cref="UapiGetWriter.IsValidExtraKey"/>.
    /// </summary>
    public List<KeyValuePair<string, string>> ExtraKeys { get; } = [];

    public List<UapiPeerState> Peers { get; } = [];

    /// <summary>Zeroes the private key and every preshared key.</summary>
    public void Dispose()
    {
        if (PrivateKey is not null)
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(PrivateKey);
        foreach (var peer in Peers)
            if (peer.PresharedKey is not null)
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(peer.PresharedKey);
    }
}

/// <summary>One peer in a <see cref="UapiDeviceState"/>.</summary>
public sealed class UapiPeerState
{
    public required byte[] PublicKey { get; init; }

    /// <summary>Null is written as 64 zeros, as wireguard-go does for "no preshared key".</summary>
    public byte[]? PresharedKey { get; set; }

    public IPEndPoint? Endpoint { get; set; }

    /// <summary>Wall-clock time of the last completed handshake in Unix nanoseconds; 0 = never.</summary>
    public long LastHandshakeUnixNanos { get; set; }

    public ulong TxBytes { get; set; }
    public ulong RxBytes { get; set; }
    public ushort PersistentKeepaliveInterval { get; set; }
    public List<IPNetwork> AllowedIps { get; } = [];
}
