using System.Security.Cryptography;
using System.Text;
using ForkNotify;
using Tunnel.Crypto;

namespace Tunnel.Device;

/// <summary>
/// mac1/mac2 and the cookie (whitepaper section 5.4.4 and 5.4.7). Both handshake messages end in
/// mac1 (16) and mac2 (16): mac1 = MAC(HASH("mac1----" || responder's static public), message up to
/// mac1), which a responder checks before any expensive work; mac2 = MAC(cookie, message up to mac2),
/// which it requires only when under load. MAC is keyed BLAKE2s with a 16-byte output.
/// </summary>
public static class CookieConstants
{
    public const int MacSize = 16;
    public const int CookieSize = 16;
    /// <summary>The responder's cookie secret is replaced after this (kernel COOKIE_SECRET_MAX_AGE).</summary>
    public static readonly TimeSpan SecretMaxAge = TunnelDevice.ToTimeSpan(Constants.CookieRefreshTimeNanos);

    /// <summary>
    /// The initiator uses a received cookie this long, COOKIE_SECRET_LATENCY less than the secret
    /// lives, so that a mac2 it sends is not made with a secret the responder has just replaced
    /// (kernel: COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY).
    /// </summary>
    public static readonly TimeSpan CookieValidity =
        TunnelDevice.ToTimeSpan(Constants.CookieRefreshTimeNanos - Constants.CookieSecretLatencyNanos);

    public static ReadOnlySpan<byte> LabelMac1 => "mac1----"u8;
    public static ReadOnlySpan<byte> LabelCookie => "cookie--"u8;

    /// <summary>Offset of mac1 in a handshake message: 32 bytes before its end.</summary>
    public static int Mac1Offset(int messageLength) => messageLength - 2 * MacSize;

    /// <summary>Offset of mac2: the last 16 bytes.</summary>
    public static int Mac2Offset(int messageLength) => messageLength - MacSize;

    /// <summary>True for the two message types that carry macs, at their exact sizes.</summary>
    public static bool HasMacs(ReadOnlySpan<byte> message) =>
        MessageInitiation.IsWellFormed(message) || MessageResponse.IsWellFormed(message);

    /// <summary>HASH(label || public key): the mac1 key or the cookie encryption key.</summary>
    internal static void DeriveKey(ReadOnlySpan<byte> label, PublicKey publicKey, Span<byte> key) =>
        Blake2s.Hash(label, publicKey.Bytes, key);
}

/// <summary>
/// The responder side of the cookie mechanism (wireguard-go's CookieChecker): checks mac1 on every
/// handshake message, mac2 when under load, and makes cookie replies. The cookie is
/// MAC(secret, source bytes) with a random secret replaced every 120 s, so it proves the sender
/// can receive at its address. Time comes in as a monotonic <see cref="TimeSpan"/>; randomness
/// through <see cref="IRandomGenerator"/>. Thread safe.
/// </summary>
public sealed class CookieChecker : IDisposable
{
    private readonly Lock _lock = new();
    private readonly IRandomGenerator _random;
    private readonly byte[] _mac1Key = new byte[Blake2s.HashSize];
    private readonly byte[] _encryptionKey = new byte[Blake2s.HashSize];
    private readonly SecretBuffer _secret = new(Blake2s.HashSize);
    private TimeSpan? _secretSet;

    /// <param name="localStatic">Our static public key (the key mac1 and the cookie reply are bound to).</param>
    public CookieChecker(PublicKey localStatic, IRandomGenerator random)
    {
        _random = random;
        CookieConstants.DeriveKey(CookieConstants.LabelMac1, localStatic, _mac1Key);
        CookieConstants.DeriveKey(CookieConstants.LabelCookie, localStatic, _encryptionKey);
    }

    /// <summary>True if the message's mac1 is right (constant-time compare).</summary>
    public bool CheckMac1(ReadOnlySpan<byte> message)
    {
        if (message.Length < 2 * CookieConstants.MacSize)
            return false;
        int mac1At = CookieConstants.Mac1Offset(message.Length);
        Span<byte> mac1 = stackalloc byte[CookieConstants.MacSize];
        Blake2s.Mac(_mac1Key, message[..mac1At], mac1);
        return CryptographicOperations.FixedTimeEquals(mac1, message.Slice(mac1At, CookieConstants.MacSize));
    }

    /// <summary>True if mac2 is made with the cookie we would give <paramref name="source"/> now.</summary>
    public bool CheckMac2(ReadOnlySpan<byte> message, ReadOnlySpan<byte> source, TimeSpan now)
    {
        if (message.Length < 2 * CookieConstants.MacSize)
            return false;
        Span<byte> cookie = stackalloc byte[CookieConstants.CookieSize];
        Span<byte> mac2 = stackalloc byte[CookieConstants.MacSize];
        try
        {
            lock (_lock)
            {
                // An expired secret is never used: cookies made with it are no longer valid.
                if (_secretSet is not { } set || now - set > CookieConstants.SecretMaxAge)
                    return false;
                Blake2s.Mac(_secret.Span, source, cookie);
            }
            int mac2At = CookieConstants.Mac2Offset(message.Length);
            Blake2s.Mac(cookie, message[..mac2At], mac2);
            return CryptographicOperations.FixedTimeEquals(mac2, message[mac2At..]);
        }
        finally
        {
            Sodium.MemZero(cookie);
        }
    }

    /// <summary>
    /// Writes the 64-byte cookie reply to <paramref name="message"/> (a handshake message whose
    /// mac1 was valid): the cookie for <paramref name="source"/>, sealed with XChaCha20-Poly1305
    /// under HASH("cookie--" || our public key), a random nonce, and the message's mac1 as
    /// associated data. Replaces the secret first if it is older than 120 s.
    /// </summary>
    public bool CreateReply(ReadOnlySpan<byte> message, ReadOnlySpan<byte> source, TimeSpan now, Span<byte> reply)
    {
        if (!CookieConstants.HasMacs(message) || reply.Length != MessageCookieReply.Size)
            return false;
        Span<byte> cookie = stackalloc byte[CookieConstants.CookieSize];
        try
        {
            lock (_lock)
            {
                if (_secretSet is not { } set || now - set > CookieConstants.SecretMaxAge)
                {
                    _random.Fill(_secret.Span);
                    _secretSet = now;
                }
                Blake2s.Mac(_secret.Span, source, cookie);
            }

            // The receiver of the reply is the sender of the message: same offset in both types.
            uint receiver = MessageHeader.ReadIndex(message, MessageInitiation.SenderOffset);
            reply.Clear();
            MessageHeader.WriteType(reply, MessageType.CookieReply);
            MessageHeader.WriteIndex(reply, MessageCookieReply.ReceiverOffset, receiver);
            var nonce = reply.Slice(MessageCookieReply.NonceOffset, MessageCookieReply.NonceSize);
            _random.Fill(nonce);
            var mac1 = message.Slice(CookieConstants.Mac1Offset(message.Length), CookieConstants.MacSize);
            Sodium.XChaCha20Poly1305Encrypt(reply[MessageCookieReply.CookieOffset..], cookie, mac1, nonce, _encryptionKey);
            return true;
        }
        finally
        {
            Sodium.MemZero(cookie);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _secret.Dispose();
            _secretSet = null;
        }
    }

    /// <summary>For a VM-snapshot capture: copies the secret out and says when it was made.</summary>
    internal TimeSpan? CaptureSecret(Span<byte> secret)
    {
        lock (_lock)
        {
            _secret.Span.CopyTo(secret);
            return _secretSet;
        }
    }

    internal void RestoreSecret(ReadOnlySpan<byte> secret, TimeSpan? secretSet)
    {
        lock (_lock)
        {
            secret.CopyTo(_secret.Span);
            _secretSet = secretSet;
        }
    }

    internal static int SecretSize => Blake2s.HashSize;
}

/// <summary>
/// The initiator side (wireguard-go's CookieGenerator), one per peer: adds mac1 (and mac2 while it
/// holds a fresh cookie) to each handshake message it sends, remembers the last mac1 so it can
/// open one cookie reply, and forgets the cookie 115 s after receiving it. Thread safe.
/// </summary>
public sealed class CookieGenerator : IDisposable
{
    private readonly Lock _lock = new();
    private readonly byte[] _mac1Key = new byte[Blake2s.HashSize];
    private readonly byte[] _encryptionKey = new byte[Blake2s.HashSize];
    private readonly SecretBuffer _cookie = new(CookieConstants.CookieSize);
    private readonly byte[] _lastMac1 = new byte[CookieConstants.MacSize];
    private bool _hasLastMac1;
    private TimeSpan? _cookieSet;

    /// <param name="remoteStatic">The peer's static public key (mac1 and the reply are bound to it).</param>
    public CookieGenerator(PublicKey remoteStatic)
    {
        CookieConstants.DeriveKey(CookieConstants.LabelMac1, remoteStatic, _mac1Key);
        CookieConstants.DeriveKey(CookieConstants.LabelCookie, remoteStatic, _encryptionKey);
    }

    /// <summary>True while a cookie younger than <see cref="CookieConstants.CookieValidity"/> is held (mac2 will be added).</summary>
    public bool HasCookie(TimeSpan now)
    {
        lock (_lock) return IsCookieFresh(now);
    }

    /// <summary>Fills mac1 and mac2 (zero without a fresh cookie) of an outgoing handshake message.</summary>
    public bool AddMacs(Span<byte> message, TimeSpan now)
    {
        if (!CookieConstants.HasMacs(message))
            return false;
        int mac1At = CookieConstants.Mac1Offset(message.Length);
        int mac2At = CookieConstants.Mac2Offset(message.Length);
        var mac1 = message.Slice(mac1At, CookieConstants.MacSize);
        var mac2 = message[mac2At..];
        Blake2s.Mac(_mac1Key, message[..mac1At], mac1);
        lock (_lock)
        {
            mac1.CopyTo(_lastMac1);
            _hasLastMac1 = true;
            if (IsCookieFresh(now))
                Blake2s.Mac(_cookie.Span, message[..mac2At], mac2);
            else
                mac2.Clear();
        }
        return true;
    }

    /// <summary>
    /// Opens a 64-byte cookie reply with the last mac1 we sent as associated data and keeps the
    /// cookie. False (nothing changed) if it is malformed, forged, or answers nothing we sent.
    /// Finding the peer by the reply's receiver index is the caller's job.
    /// </summary>
    public bool ConsumeReply(ReadOnlySpan<byte> reply, TimeSpan now)
    {
        if (!MessageCookieReply.IsWellFormed(reply))
            return false;
        Span<byte> cookie = stackalloc byte[CookieConstants.CookieSize];
        try
        {
            lock (_lock)
            {
                if (!_hasLastMac1)
                    return false;
                if (!Sodium.XChaCha20Poly1305Decrypt(cookie,
                        reply.Slice(MessageCookieReply.CookieOffset, MessageCookieReply.EncryptedCookieSize), _lastMac1,
                        reply.Slice(MessageCookieReply.NonceOffset, MessageCookieReply.NonceSize), _encryptionKey))
                    return false;
                cookie.CopyTo(_cookie.Span);
                _cookieSet = now;
                // One reply per message sent: a replay of it must not refresh the cookie (kernel
                // wg_cookie_message_consume clears have_sent_mac1).
                _hasLastMac1 = false;
                return true;
            }
        }
        finally
        {
            Sodium.MemZero(cookie);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _cookie.Dispose();
            _cookieSet = null;
            _hasLastMac1 = false;
        }
    }

    /// <summary>For a VM-snapshot capture: the cookie, its age and the last mac1 sent.</summary>
    internal TimeSpan? Capture(Span<byte> cookie, Span<byte> lastMac1, out bool hasLastMac1)
    {
        lock (_lock)
        {
            _cookie.Span.CopyTo(cookie);
            _lastMac1.CopyTo(lastMac1);
            hasLastMac1 = _hasLastMac1;
            return _cookieSet;
        }
    }

    internal void Restore(ReadOnlySpan<byte> cookie, ReadOnlySpan<byte> lastMac1, bool hasLastMac1, TimeSpan? cookieSet)
    {
        lock (_lock)
        {
            cookie.CopyTo(_cookie.Span);
            lastMac1.CopyTo(_lastMac1);
            _hasLastMac1 = hasLastMac1;
            _cookieSet = cookieSet;
        }
    }

    /// <summary>Writes the generator's state (for the device's state digest, never for display).</summary>
    internal void WriteState(BinaryWriter writer)
    {
        lock (_lock)
            WriteState(writer, _hasLastMac1, _lastMac1, _cookieSet, _cookie.Span);
    }

    /// <summary>The state of a generator not made yet (a peer we never sent a handshake message
    /// to), written as a new one's would be.</summary>
    internal static void WriteInitialState(BinaryWriter writer) =>
        WriteState(writer, false, stackalloc byte[CookieConstants.MacSize], null,
            stackalloc byte[CookieConstants.CookieSize]);

    private static void WriteState(BinaryWriter writer, bool hasLastMac1, ReadOnlySpan<byte> lastMac1,
        TimeSpan? cookieSet, ReadOnlySpan<byte> cookie)
    {
        writer.Write(hasLastMac1);
        writer.Write(lastMac1);
        writer.Write(cookieSet?.Ticks ?? -1);
        writer.Write(System.Security.Cryptography.SHA256.HashData(cookie));
    }

    private bool IsCookieFresh(TimeSpan now) =>
        _cookieSet is { } set && now - set <= CookieConstants.CookieValidity;
}
