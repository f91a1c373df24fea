using Tunnel.Crypto;

namespace Tunnel.Noise;

/// <summary>
/// Noise section 5.2, SymmetricState, with BLAKE2s as HASH and the whitepaper's KDF as HKDF:
/// a chaining key ck, a handshake hash h and a <see cref="CipherState"/>. This is a view over
/// 96 caller-owned bytes (ck | h | k), so the state can live in a peer's pinned buffer or on the
/// stack and be zeroed with it.
/// </summary>
/// <remarks>
/// Only ck and h outlive a message. The cipher's key and nonce need not: in IKpsk2 every message
/// mixes a key (MixKey on e, because of the psk modifier) before its first encryption.
/// </remarks>
public ref struct SymmetricState
{
    public const int HashLength = Blake2s.HashSize;
    public const int Size = 3 * HashLength;

    public readonly Span<byte> ChainingKey;
    public readonly Span<byte> Hash;
    private CipherState _cipher;

    public SymmetricState(Span<byte> storage)
    {
        if (storage.Length != Size)
            throw new ArgumentException($"SymmetricState needs {Size} bytes.", nameof(storage));
        ChainingKey = storage[..HashLength];
        Hash = storage.Slice(HashLength, HashLength);
        _cipher = new CipherState(storage.Slice(2 * HashLength, HashLength));
    }

    public readonly bool HasKey => _cipher.HasKey;

    /// <summary>InitializeSymmetric(protocol_name): h = name padded, or HASH(name) if longer than 32; ck = h.</summary>
    public void InitializeSymmetric(scoped ReadOnlySpan<byte> protocolName)
    {
        if (protocolName.Length <= HashLength)
        {
            Hash.Clear();
            protocolName.CopyTo(Hash);
        }
        else
        {
            Blake2s.Hash(protocolName, Hash);
        }
        Hash.CopyTo(ChainingKey);
    }

    /// <summary>Sets ck and h directly (a precomputed InitializeSymmetric + MixHash(prologue)).</summary>
    public void Initialize(scoped ReadOnlySpan<byte> chainingKey, scoped ReadOnlySpan<byte> hash)
    {
        chainingKey.CopyTo(ChainingKey);
        hash.CopyTo(Hash);
    }

    /// <summary>MixKey(ikm): ck, temp_k = HKDF(ck, ikm, 2); InitializeKey(temp_k).</summary>
    public void MixKey(scoped ReadOnlySpan<byte> inputKeyMaterial)
    {
        Span<byte> tempK = stackalloc byte[HashLength];
        Kdf.Kdf2(ChainingKey, tempK, ChainingKey, inputKeyMaterial);
        _cipher.InitializeKey(tempK);
        Sodium.MemZero(tempK);
    }

    /// <summary>MixHash(data): h = HASH(h || data).</summary>
    public void MixHash(scoped ReadOnlySpan<byte> data) => Blake2s.Hash(Hash, data, Hash);

    /// <summary>MixKeyAndHash(ikm) (the psk token): ck, temp_h, temp_k = HKDF(ck, ikm, 3); MixHash(temp_h); InitializeKey(temp_k).</summary>
    public void MixKeyAndHash(scoped ReadOnlySpan<byte> inputKeyMaterial)
    {
        Span<byte> tempH = stackalloc byte[HashLength];
        Span<byte> tempK = stackalloc byte[HashLength];
        Kdf.Kdf3(ChainingKey, tempH, tempK, ChainingKey, inputKeyMaterial);
        MixHash(tempH);
        _cipher.InitializeKey(tempK);
        Sodium.MemZero(tempH);
        Sodium.MemZero(tempK);
    }

    /// <summary>EncryptAndHash(plaintext): ciphertext = EncryptWithAd(h, plaintext); MixHash(ciphertext).</summary>
    public void EncryptAndHash(scoped ReadOnlySpan<byte> plaintext, scoped Span<byte> ciphertext)
    {
        _cipher.EncryptWithAd(Hash, plaintext, ciphertext);
        MixHash(ciphertext);
    }

    /// <summary>DecryptAndHash(ciphertext): plaintext = DecryptWithAd(h, ciphertext); MixHash(ciphertext). False on a bad tag.</summary>
    public bool DecryptAndHash(scoped ReadOnlySpan<byte> ciphertext, scoped Span<byte> plaintext)
    {
        if (!_cipher.DecryptWithAd(Hash, ciphertext, plaintext))
            return false;
        MixHash(ciphertext);
        return true;
    }

    /// <summary>Split(): temp_k1, temp_k2 = HKDF(ck, zerolen, 2), the initiator's sending and receiving keys.</summary>
    public readonly void Split(scoped Span<byte> initiatorToResponder, scoped Span<byte> responderToInitiator) =>
        Kdf.Kdf2(initiatorToResponder, responderToInitiator, ChainingKey, ReadOnlySpan<byte>.Empty);
}
