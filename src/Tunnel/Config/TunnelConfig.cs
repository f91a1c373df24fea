using System.Net;
using System.Security.Cryptography;

namespace Tunnel.Config;

/// <summary>A parsed, fully validated wg-quick style file. Dispose zeroes the keys it holds.</summary>
public sealed class TunnelConfig : IDisposable
{
    public TunnelConfig(string fileName, InterfaceConfig @interface, IReadOnlyList<PeerConfig> peers,
        IReadOnlyList<string> warnings)
    {
        FileName = fileName;
        Interface = @interface;
        Peers = peers;
        Warnings = warnings;
    }

    public string FileName { get; }
    public InterfaceConfig Interface { get; }
    public IReadOnlyList<PeerConfig> Peers { get; }

    /// <summary>Lines accepted but not acted on (wg-quick options), each as <c>FILE:LINE: text</c>.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>No key, no peers, no addresses: the device <c>tunneld IFNAME</c> (like
    /// <c>wireguard-go IFNAME</c>) starts with, for wg or wg-quick to configure.</summary>
    public static TunnelConfig Empty(string interfaceName) =>
        new(interfaceName, new InterfaceConfig { PrivateKey = [] }, [], []);

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(Interface.PrivateKey);
        foreach (var peer in Peers)
            if (peer.PresharedKey is { } psk)
                CryptographicOperations.ZeroMemory(psk);
    }
}

/// <summary>The <c>[Interface]</c> section.</summary>
public sealed class InterfaceConfig
{
    /// <summary>Default MTU when the file names none: wg-quick's 1420 (1500 minus the 80 bytes of
    /// IPv6 + UDP + WireGuard overhead).</summary>
    public const int DefaultMtu = 1420;

    /// <summary>32 bytes, as given (clamping happens where X25519 uses it); empty only in
    /// <see cref="TunnelConfig.Empty"/>.</summary>
    public required byte[] PrivateKey { get; init; }

    /// <summary>UDP port; 0 lets the system pick.</summary>
    public ushort ListenPort { get; init; }

    /// <summary>SO_MARK for outgoing packets; 0 is off.</summary>
    public uint FwMark { get; init; }

    public int Mtu { get; init; } = DefaultMtu;
    public IReadOnlyList<InterfaceAddress> Addresses { get; init; } = [];
}

/// <summary>One <c>[Peer]</c> section.</summary>
public sealed class PeerConfig
{
    public required byte[] PublicKey { get; init; }
    public byte[]? PresharedKey { get; init; }
    public IReadOnlyList<IPNetwork> AllowedIps { get; init; } = [];

    /// <summary>Resolved at load time; null when the peer is only ever a responder.</summary>
    public IPEndPoint? Endpoint { get; init; }

    /// <summary>Seconds; 0 is off.</summary>
    public ushort PersistentKeepalive { get; init; }

    /// <summary>1-based line of the <c>[Peer]</c> header, for messages about this peer.</summary>
    public int Line { get; init; }
}
