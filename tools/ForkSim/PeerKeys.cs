using System.Security.Cryptography;
using Tunnel.Crypto;
using VmDevices;

namespace ForkSim;

/// <summary>
/// The two peers' static keys of one simulated run, drawn from a seed: A's private key (A is
/// configured from it in every guest), B's private key (for B's device, zeroed on dispose), and
/// both public keys.
/// </summary>
internal sealed class PeerKeys : IDisposable
{
    public PeerKeys(ulong seed)
    {
        var keys = new DeterministicEntropy(seed);
        keys.Fill(PrivateKeyA);
        keys.Fill(PrivateKeyB);
        using var a = PrivateKey.Import(PrivateKeyA);
        using var b = PrivateKey.Import(PrivateKeyB);
        a.PublicKey.CopyTo(PublicKeyA);
        b.PublicKey.CopyTo(PublicKeyB);
    }

    public byte[] PrivateKeyA { get; } = new byte[PrivateKey.Size];
    public byte[] PrivateKeyB { get; } = new byte[PrivateKey.Size];
    public byte[] PublicKeyA { get; } = new byte[PublicKey.Size];
    public byte[] PublicKeyB { get; } = new byte[PublicKey.Size];

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(PrivateKeyA);
        CryptographicOperations.ZeroMemory(PrivateKeyB);
    }
}
