using Tunnel.Crypto;
using Tunnel.Noise;

namespace Tunnel.Device;

/// <summary>The device's own static key pair and the Noise construction it speaks.</summary>
public sealed class StaticIdentity
{
    /// <param name="privateKey">Owned by the caller (the device), which disposes it.</param>
    /// <param name="construction">WireGuard's unless a test runs a published Noise vector.</param>
    public StaticIdentity(PrivateKey privateKey, NoiseConstruction? construction = null)
    {
        PrivateKey = privateKey;
        Construction = construction ?? NoiseConstruction.WireGuard;
    }

    public PrivateKey PrivateKey { get; }
    public PublicKey PublicKey => PrivateKey.PublicKey;
    public NoiseConstruction Construction { get; }
}
