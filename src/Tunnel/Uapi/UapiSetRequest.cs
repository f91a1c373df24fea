using System.Net;
using System.Security.Cryptography;

namespace Tunnel.Uapi;

/// <summary>
/// A <c>set=1</c> request, parsed and validated completely before the device sees it. Fields that
/// were absent are null/false. Peers appear in request order; the same public key may appear twice
/// and then applies twice in order, as on wireguard-go. Dispose zeroes the keys.
/// </summary>
public sealed class UapiSetRequest : IDisposable
{
    /// <summary>32 bytes; all zeros means "remove the private key" (wireguard-go semantics).</summary>
    public byte[]? PrivateKey { get; internal set; }

    public ushort? ListenPort { get; internal set; }
    public uint? FwMark { get; internal set; }

    /// <summary>Remove every existing peer before applying <see cref="Peers"/>.</summary>
    public bool ReplacePeers { get; internal set; }

    public List<UapiPeerUpdate> Peers { get; } = [];

    public void Dispose()
    {
        if (PrivateKey is not null)
            CryptographicOperations.ZeroMemory(PrivateKey);
        foreach (var peer in Peers)
            if (peer.PresharedKey is not null)
                CryptographicOperations.ZeroMemory(peer.PresharedKey);
    }
}

/// <summary>The lines following one <c>public_key=</c> of a set request.</summary>
public sealed class UapiPeerUpdate
{
    public UapiPeerUpdate(byte[] publicKey) => PublicKey = publicKey;

    public byte[] PublicKey { get; }

    /// <summary>Only change the peer if it exists; never create it.</summary>
    public bool UpdateOnly { get; internal set; }

    /// <summary>Remove the peer; when set, the request holds no other change for it.</summary>
    public bool Remove { get; internal set; }

    /// <summary>32 bytes; all zeros means "no preshared key".</summary>
    public byte[]? PresharedKey { get; internal set; }

    public IPEndPoint? Endpoint { get; internal set; }
    public ushort? PersistentKeepaliveInterval { get; internal set; }

    /// <summary>Remove the peer's allowed IPs before applying <see cref="AllowedIps"/>.</summary>
    public bool ReplaceAllowedIps { get; internal set; }

    /// <summary>Additions and removals (<c>allowed_ip=-PREFIX</c>), in request order.</summary>
    public List<UapiAllowedIpChange> AllowedIps { get; } = [];
}

/// <summary>One <c>allowed_ip=</c> line: add the prefix, or remove it when written with a leading '-'.</summary>
public readonly record struct UapiAllowedIpChange(IPNetwork Prefix, bool Remove);
