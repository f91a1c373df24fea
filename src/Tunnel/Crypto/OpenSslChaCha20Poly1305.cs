using System.Runtime.InteropServices;

namespace Tunnel.Crypto;

/// <summary>
/// ChaCha20-Poly1305 IETF (RFC 8439) through OpenSSL 3's EVP interface (libcrypto.so.3, which .NET
/// itself needs on Linux). On this project's machines OpenSSL's AVX-512 code seals and opens a
/// 1420-byte packet in about 0.69 of libsodium 1.0.18's time (AeadBenchmarks), and once the
/// offloads took the kernel's per-packet cost away the AEAD was the largest cost left on the data
/// path. Its fixed cost per call is higher, so <see cref="TransportAead"/> uses it for large
/// packets only. .NET's own ChaCha20Poly1305 is slower than both here: it re-initialises the
/// cipher on every call and throws on a bad tag.
/// <para>Each thread keeps one encryption and one decryption context with the cipher fetched
/// once; a call only sets key and nonce. OpenSSL copies the key into the context, so the context
/// is re-keyed with zeros after every call, or, on a thread that called
/// <see cref="DeferScrubOnThisThread"/>, at its <see cref="ScrubThisThread"/>: the data-path
/// threads do that after each batch of packets, before they wait for the next, because a second
/// initialisation per packet costs as much as the encryption. Either way no session key stays in
/// OpenSSL's memory while its thread is idle (our own key buffers are zeroed by their owners). A
/// context is scrubbed and freed by its finalizer when its thread is gone.</para>
/// </summary>
internal static unsafe partial class OpenSslChaCha20Poly1305
{
    private const string Library = "libcrypto.so.3";
    private const int EVP_CTRL_AEAD_GET_TAG = 0x10;
    private const int EVP_CTRL_AEAD_SET_TAG = 0x11;
    private const int TagSize = 16;

    private static readonly nint Cipher = Fetch();

    [ThreadStatic]
    private static Context? t_encrypt;

    [ThreadStatic]
    private static Context? t_decrypt;

    [ThreadStatic]
    private static bool t_deferScrub;

    /// <summary>True when libcrypto.so.3 loaded and offers the cipher.</summary>
    public static bool IsAvailable => Cipher != 0;

    private static nint Fetch()
    {
        try
        {
            return EVP_CIPHER_fetch(0, "ChaCha20-Poly1305", null);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return 0;
        }
    }

    /// <summary>From now on this thread's contexts keep the last key until <see cref="ScrubThisThread"/>.</summary>
    public static void DeferScrubOnThisThread() => t_deferScrub = true;

    /// <summary>Overwrites the key in this thread's contexts with zeros (cheap when they hold none).</summary>
    public static void ScrubThisThread()
    {
        t_encrypt?.Scrub();
        t_decrypt?.Scrub();
    }

    /// <summary>Seals <paramref name="plaintext"/> into <paramref name="ciphertext"/> (length + 16,
    /// tag last), no associated data; the two may be the same memory. The caller checked lengths.</summary>
    public static void Encrypt(Span<byte> ciphertext, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        var context = t_encrypt ??= new Context(encrypt: true);
        var ctx = context.Handle;
        fixed (byte* c = ciphertext, m = plaintext, n = nonce, k = key)
        {
            try
            {
                int written = 0, final = 0;
                if (EVP_CipherInit_ex2(ctx, 0, k, n, 1, 0) != 1
                    || (plaintext.Length > 0 && EVP_CipherUpdate(ctx, c, &written, m, plaintext.Length) != 1)
                    || EVP_CipherFinal_ex(ctx, c + written, &final) != 1
                    || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TagSize, c + plaintext.Length) != 1)
                    throw new InvalidOperationException("OpenSSL ChaCha20-Poly1305 encryption failed");
            }
            finally
            {
                if (!t_deferScrub)
                    context.Scrub();
            }
        }
    }

    /// <summary>Opens <paramref name="ciphertext"/> (payload + tag) into <paramref name="plaintext"/>;
    /// false on a bad tag (what was written to <paramref name="plaintext"/> is then to be ignored).</summary>
    public static bool Decrypt(Span<byte> plaintext, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> key)
    {
        var context = t_decrypt ??= new Context(encrypt: false);
        var ctx = context.Handle;
        var length = ciphertext.Length - TagSize;
        fixed (byte* m = plaintext, c = ciphertext, n = nonce, k = key)
        {
            try
            {
                int written = 0, final = 0;
                return EVP_CipherInit_ex2(ctx, 0, k, n, 0, 0) == 1
                       && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TagSize, c + length) == 1
                       && (length == 0 || EVP_CipherUpdate(ctx, m, &written, c, length) == 1)
                       && EVP_CipherFinal_ex(ctx, m + written, &final) == 1;
            }
            finally
            {
                if (!t_deferScrub)
                    context.Scrub();
            }
        }
    }

    /// <summary>One thread's EVP_CIPHER_CTX for one direction.</summary>
    private sealed class Context
    {
        private static readonly byte[] ZeroKey = new byte[32];
        private readonly nint _ctx;
        private readonly int _encrypt;
        private bool _keyed;

        public Context(bool encrypt)
        {
            _encrypt = encrypt ? 1 : 0;
            _ctx = EVP_CIPHER_CTX_new();
            if (_ctx == 0 || EVP_CipherInit_ex2(_ctx, Cipher, null, null, _encrypt, 0) != 1)
                throw new InvalidOperationException("cannot create an OpenSSL ChaCha20-Poly1305 context");
        }

        /// <summary>The context, for the caller to key: it counts as keyed until <see cref="Scrub"/>.</summary>
        public nint Handle
        {
            get
            {
                _keyed = true;
                return _ctx;
            }
        }

        /// <summary>Overwrites the key OpenSSL copied in with zeros.</summary>
        public void Scrub()
        {
            if (!_keyed)
                return;
            fixed (byte* zero = ZeroKey)
                EVP_CipherInit_ex2(_ctx, 0, zero, null, _encrypt, 0);
            _keyed = false;
        }

        ~Context()
        {
            Scrub();
            EVP_CIPHER_CTX_free(_ctx);
        }
    }

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint EVP_CIPHER_fetch(nint libraryContext, string algorithm, string? properties);

    [LibraryImport(Library)]
    private static partial nint EVP_CIPHER_CTX_new();

    [LibraryImport(Library)]
    private static partial void EVP_CIPHER_CTX_free(nint ctx);

    [LibraryImport(Library)]
    private static partial int EVP_CipherInit_ex2(nint ctx, nint cipher, byte* key, byte* iv, int encrypt, nint parameters);

    [LibraryImport(Library)]
    private static partial int EVP_CipherUpdate(nint ctx, byte* output, int* outputLength, byte* input, int inputLength);

    [LibraryImport(Library)]
    private static partial int EVP_CipherFinal_ex(nint ctx, byte* output, int* outputLength);

    [LibraryImport(Library)]
    private static partial int EVP_CIPHER_CTX_ctrl(nint ctx, int type, int argument, void* pointer);
}
