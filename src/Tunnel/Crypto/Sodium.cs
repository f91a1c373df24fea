using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace Tunnel.Crypto;

/// <summary>
/// The one interop class over the system libsodium (Debian package <c>libsodium23</c>): X25519,
/// ChaCha20-Poly1305 IETF, XChaCha20-Poly1305 IETF and memzero. Every call is span based and
/// allocation free; lengths are checked here so libsodium never reads or writes out of bounds.
/// </summary>
/// <remarks>
/// The static constructor registers this assembly's DllImport resolver (there can be only one per
/// assembly): it maps the name "libsodium" to <c>libsodium.so.23</c>, then to the unversioned name,
/// and leaves every other library name to the runtime's default probing. Other interop in this
/// assembly must not call SetDllImportResolver again (it would throw); extend <see cref="Resolve"/>.
/// </remarks>
public static unsafe class Sodium
{
    public const string LibraryName = "libsodium";
    public const string DebianLibraryFile = "libsodium.so.23";

    public const int X25519KeySize = 32;
    public const int AeadKeySize = 32;
    public const int AeadTagSize = 16;
    public const int ChaCha20Poly1305NonceSize = 12;
    public const int XChaCha20Poly1305NonceSize = 24;

    private static readonly Exception? LoadFailure;

    static Sodium()
    {
        NativeLibrary.SetDllImportResolver(typeof(Sodium).Assembly, Resolve);
        try
        {
            // sodium_init picks the fastest implementations for this CPU; it is idempotent and
            // returns 1 when already initialised, -1 only on failure.
            if (Native.sodium_init() < 0)
                LoadFailure = new InvalidOperationException("sodium_init() failed.");
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            LoadFailure = new DllNotFoundException(
                $"Cannot load {DebianLibraryFile} (libsodium). Install the Debian package libsodium23 " +
                "(apt-get install libsodium23).", e);
        }
    }

    /// <summary>
    /// Loads and initialises libsodium, or throws a <see cref="DllNotFoundException"/> naming
    /// <c>libsodium.so.23</c> and the package <c>libsodium23</c>. The daemon calls this at start-up
    /// so a missing library is reported at once rather than at the first handshake.
    /// </summary>
    public static void EnsureLoaded()
    {
        if (LoadFailure is not null)
            throw LoadFailure;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != LibraryName)
            return IntPtr.Zero;
        if (NativeLibrary.TryLoad(DebianLibraryFile, assembly, searchPath, out var handle))
            return handle;
        if (NativeLibrary.TryLoad(LibraryName, assembly, searchPath, out handle))
            return handle;
        return IntPtr.Zero;
    }

    // ---- X25519 ----

    /// <summary>
    /// X25519(scalar, point). Returns false, with <paramref name="sharedSecret"/> zeroed, when the
    /// result is all zeros (a low-order point): WireGuard refuses such a shared secret.
    /// </summary>
    public static bool ScalarMult(Span<byte> sharedSecret, ReadOnlySpan<byte> scalar, ReadOnlySpan<byte> point)
    {
        CheckLength(sharedSecret.Length, X25519KeySize, nameof(sharedSecret));
        CheckLength(scalar.Length, X25519KeySize, nameof(scalar));
        CheckLength(point.Length, X25519KeySize, nameof(point));
        EnsureLoaded();
        int rc;
        fixed (byte* q = sharedSecret, n = scalar, p = point)
            rc = Native.crypto_scalarmult_curve25519(q, n, p);
        // libsodium already returns -1 for an all-zero output; check again, in constant time, so
        // the rule does not depend on the library version.
        if (rc != 0 || IsAllZero(sharedSecret))
        {
            CryptographicOperations.ZeroMemory(sharedSecret);
            return false;
        }
        return true;
    }

    /// <summary>X25519(scalar, 9): the public key of a private scalar.</summary>
    public static void ScalarMultBase(Span<byte> publicKey, ReadOnlySpan<byte> scalar)
    {
        CheckLength(publicKey.Length, X25519KeySize, nameof(publicKey));
        CheckLength(scalar.Length, X25519KeySize, nameof(scalar));
        EnsureLoaded();
        fixed (byte* q = publicKey, n = scalar)
            if (Native.crypto_scalarmult_curve25519_base(q, n) != 0)
                throw new CryptographicException("crypto_scalarmult_curve25519_base failed.");
    }

    // ---- ChaCha20-Poly1305 IETF (RFC 8439) ----

    /// <summary>
    /// Seals <paramref name="plaintext"/> into <paramref name="ciphertext"/> (plaintext length + 16,
    /// the tag last). The two may be the same memory (in-place encryption).
    /// </summary>
    public static void ChaCha20Poly1305Encrypt(Span<byte> ciphertext, ReadOnlySpan<byte> plaintext,
        ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        CheckLength(ciphertext.Length, plaintext.Length + AeadTagSize, nameof(ciphertext));
        CheckLength(nonce.Length, ChaCha20Poly1305NonceSize, nameof(nonce));
        CheckLength(key.Length, AeadKeySize, nameof(key));
        EnsureLoaded();
        fixed (byte* c = ciphertext, m = plaintext, ad = associatedData, npub = nonce, k = key)
            Native.crypto_aead_chacha20poly1305_ietf_encrypt(c, null, m, (ulong)plaintext.Length,
                ad, (ulong)associatedData.Length, null, npub, k);
    }

    /// <summary>
    /// Opens <paramref name="ciphertext"/> (payload + 16-byte tag) into <paramref name="plaintext"/>
    /// (ciphertext length - 16). Returns false on a bad tag or a too-short input; in place allowed.
    /// </summary>
    public static bool ChaCha20Poly1305Decrypt(Span<byte> plaintext, ReadOnlySpan<byte> ciphertext,
        ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        if (ciphertext.Length < AeadTagSize || plaintext.Length != ciphertext.Length - AeadTagSize)
            return false;
        CheckLength(nonce.Length, ChaCha20Poly1305NonceSize, nameof(nonce));
        CheckLength(key.Length, AeadKeySize, nameof(key));
        EnsureLoaded();
        fixed (byte* m = plaintext, c = ciphertext, ad = associatedData, npub = nonce, k = key)
            return Native.crypto_aead_chacha20poly1305_ietf_decrypt(m, null, null, c, (ulong)ciphertext.Length,
                ad, (ulong)associatedData.Length, npub, k) == 0;
    }

    /// <summary>Detached seal: the tag goes to its own 16-byte span. In place allowed.</summary>
    public static void ChaCha20Poly1305EncryptDetached(Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> plaintext,
        ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        CheckLength(ciphertext.Length, plaintext.Length, nameof(ciphertext));
        CheckLength(tag.Length, AeadTagSize, nameof(tag));
        CheckLength(nonce.Length, ChaCha20Poly1305NonceSize, nameof(nonce));
        CheckLength(key.Length, AeadKeySize, nameof(key));
        EnsureLoaded();
        fixed (byte* c = ciphertext, mac = tag, m = plaintext, ad = associatedData, npub = nonce, k = key)
            Native.crypto_aead_chacha20poly1305_ietf_encrypt_detached(c, mac, null, m, (ulong)plaintext.Length,
                ad, (ulong)associatedData.Length, null, npub, k);
    }

    /// <summary>Detached open. Returns false on a bad tag; in place allowed.</summary>
    public static bool ChaCha20Poly1305DecryptDetached(Span<byte> plaintext, ReadOnlySpan<byte> ciphertext,
        ReadOnlySpan<byte> tag, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        if (plaintext.Length != ciphertext.Length || tag.Length != AeadTagSize)
            return false;
        CheckLength(nonce.Length, ChaCha20Poly1305NonceSize, nameof(nonce));
        CheckLength(key.Length, AeadKeySize, nameof(key));
        EnsureLoaded();
        fixed (byte* m = plaintext, c = ciphertext, mac = tag, ad = associatedData, npub = nonce, k = key)
            return Native.crypto_aead_chacha20poly1305_ietf_decrypt_detached(m, null, c, (ulong)ciphertext.Length,
                mac, ad, (ulong)associatedData.Length, npub, k) == 0;
    }

    // ---- XChaCha20-Poly1305 IETF (cookie reply) ----

    /// <summary>Seals with a 24-byte nonce (WireGuard's cookie reply). Output is plaintext + 16.</summary>
    public static void XChaCha20Poly1305Encrypt(Span<byte> ciphertext, ReadOnlySpan<byte> plaintext,
        ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        CheckLength(ciphertext.Length, plaintext.Length + AeadTagSize, nameof(ciphertext));
        CheckLength(nonce.Length, XChaCha20Poly1305NonceSize, nameof(nonce));
        CheckLength(key.Length, AeadKeySize, nameof(key));
        EnsureLoaded();
        fixed (byte* c = ciphertext, m = plaintext, ad = associatedData, npub = nonce, k = key)
            Native.crypto_aead_xchacha20poly1305_ietf_encrypt(c, null, m, (ulong)plaintext.Length,
                ad, (ulong)associatedData.Length, null, npub, k);
    }

    /// <summary>Opens a 24-byte-nonce box. Returns false on a bad tag or a too-short input.</summary>
    public static bool XChaCha20Poly1305Decrypt(Span<byte> plaintext, ReadOnlySpan<byte> ciphertext,
        ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        if (ciphertext.Length < AeadTagSize || plaintext.Length != ciphertext.Length - AeadTagSize)
            return false;
        CheckLength(nonce.Length, XChaCha20Poly1305NonceSize, nameof(nonce));
        CheckLength(key.Length, AeadKeySize, nameof(key));
        EnsureLoaded();
        fixed (byte* m = plaintext, c = ciphertext, ad = associatedData, npub = nonce, k = key)
            return Native.crypto_aead_xchacha20poly1305_ietf_decrypt(m, null, null, c, (ulong)ciphertext.Length,
                ad, (ulong)associatedData.Length, npub, k) == 0;
    }

    // ---- memzero ----

    /// <summary>Zeroes secret memory in a way the compiler may not remove.</summary>
    public static void MemZero(Span<byte> buffer)
    {
        if (buffer.IsEmpty)
            return;
        EnsureLoaded();
        fixed (byte* p = buffer)
            Native.sodium_memzero(p, (nuint)buffer.Length);
    }

    private static bool IsAllZero(ReadOnlySpan<byte> bytes)
    {
        int acc = 0;
        foreach (byte b in bytes)
            acc |= b;
        return acc == 0;
    }

    private static void CheckLength(int actual, int expected, string name)
    {
        if (actual != expected)
            throw new ArgumentException($"{name} must be {expected} bytes, not {actual}.", name);
    }

    // The declarations live in a nested class so that Sodium's static constructor (which installs
    // the resolver) always runs before the first P/Invoke is bound.
    private static class Native
    {
        [DllImport(LibraryName)] public static extern int sodium_init();
        [DllImport(LibraryName)] public static extern void sodium_memzero(byte* pnt, nuint len);

        [DllImport(LibraryName)] public static extern int crypto_scalarmult_curve25519(byte* q, byte* n, byte* p);
        [DllImport(LibraryName)] public static extern int crypto_scalarmult_curve25519_base(byte* q, byte* n);

        [DllImport(LibraryName)]
        public static extern int crypto_aead_chacha20poly1305_ietf_encrypt(byte* c, ulong* clen, byte* m, ulong mlen,
            byte* ad, ulong adlen, byte* nsec, byte* npub, byte* k);
        [DllImport(LibraryName)]
        public static extern int crypto_aead_chacha20poly1305_ietf_decrypt(byte* m, ulong* mlen, byte* nsec, byte* c,
            ulong clen, byte* ad, ulong adlen, byte* npub, byte* k);
        [DllImport(LibraryName)]
        public static extern int crypto_aead_chacha20poly1305_ietf_encrypt_detached(byte* c, byte* mac, ulong* maclen,
            byte* m, ulong mlen, byte* ad, ulong adlen, byte* nsec, byte* npub, byte* k);
        [DllImport(LibraryName)]
        public static extern int crypto_aead_chacha20poly1305_ietf_decrypt_detached(byte* m, byte* nsec, byte* c,
            ulong clen, byte* mac, byte* ad, ulong adlen, byte* npub, byte* k);

        [DllImport(LibraryName)]
        public static extern int crypto_aead_xchacha20poly1305_ietf_encrypt(byte* c, ulong* clen, byte* m, ulong mlen,
            byte* ad, ulong adlen, byte* nsec, byte* npub, byte* k);
        [DllImport(LibraryName)]
        public static extern int crypto_aead_xchacha20poly1305_ietf_decrypt(byte* m, ulong* mlen, byte* nsec, byte* c,
            ulong clen, byte* ad, ulong adlen, byte* npub, byte* k);
    }
}
