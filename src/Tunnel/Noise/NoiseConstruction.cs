using System.Text;
using Tunnel.Crypto;

namespace Tunnel.Noise;

/// <summary>
/// A protocol name and prologue, with the state they produce precomputed: InitializeSymmetric(name)
/// then MixHash(prologue). For WireGuard these are the whitepaper's Ci = HASH(construction) and
/// Hi = HASH(Ci || identifier). Other prologues exist only so that published Noise test vectors
/// (cacophony's, with prologue "John Galt") run through the product's handshake code.
/// </summary>
public sealed class NoiseConstruction
{
    public const string IKpsk2Name = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
    public const string WireGuardIdentifier = "WireGuard v1 zx2c4 Jason@zx2c4.com";

    /// <summary>WireGuard: IKpsk2 with the identifier as prologue.</summary>
    public static readonly NoiseConstruction WireGuard = new(Encoding.ASCII.GetBytes(WireGuardIdentifier));

    private readonly byte[] _initialChainingKey = new byte[SymmetricState.HashLength];
    private readonly byte[] _initialHash = new byte[SymmetricState.HashLength];

    public NoiseConstruction(ReadOnlySpan<byte> prologue)
    {
        Span<byte> storage = stackalloc byte[SymmetricState.Size];
        var state = new SymmetricState(storage);
        state.InitializeSymmetric(Encoding.ASCII.GetBytes(IKpsk2Name));
        state.MixHash(prologue);
        state.ChainingKey.CopyTo(_initialChainingKey);
        state.Hash.CopyTo(_initialHash);
    }

    /// <summary>ck after InitializeSymmetric (WireGuard's Ci). Public knowledge, not a secret.</summary>
    public ReadOnlySpan<byte> InitialChainingKey => _initialChainingKey;

    /// <summary>h after MixHash(prologue) (WireGuard's Hi). Public knowledge, not a secret.</summary>
    public ReadOnlySpan<byte> InitialHash => _initialHash;
}
