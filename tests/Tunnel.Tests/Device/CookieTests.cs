using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Device;

/// <summary>mac1, mac2 and the cookie reply in virtual time (no sleeping).</summary>
public sealed class CookieTests : IDisposable
{
    private readonly SeededRandom _random = new(99);
    private readonly PrivateKey _initiatorKey;
    private readonly PrivateKey _responderKey;
    private readonly Handshake _handshake;
    private readonly CookieChecker _checker;       // at the responder
    private readonly CookieGenerator _generator;   // at the initiator, for the responder
    private readonly byte[] _source = new byte[18];
    private readonly int _sourceLength;
    private static readonly TimeSpan T0 = TimeSpan.FromSeconds(1000);

    public CookieTests()
    {
        _initiatorKey = PrivateKey.Generate(_random);
        _responderKey = PrivateKey.Generate(_random);
        _handshake = new Handshake(new StaticIdentity(_initiatorKey), _responderKey.PublicKey);
        _checker = new CookieChecker(_responderKey.PublicKey, _random);
        _generator = new CookieGenerator(_responderKey.PublicKey);
        _sourceLength = WriteSource("10.99.0.1:51820", _source);
    }

    private ReadOnlySpan<byte> Source => _source.AsSpan(0, _sourceLength);

    /// <summary>The bytes the engine binds a cookie to for a datagram from <paramref name="endpoint"/>.</summary>
    private static int WriteSource(string endpoint, Span<byte> source) =>
        (Endpoint.TryParse(endpoint, out Endpoint from) ? from : throw new ArgumentException(endpoint)).WriteCookieSource(source);

    public void Dispose()
    {
        _checker.Dispose();
        _generator.Dispose();
        _handshake.Dispose();
        _initiatorKey.Dispose();
        _responderKey.Dispose();
    }

    private byte[] Initiation(TimeSpan now, int second = 0)
    {
        var message = new byte[MessageInitiation.Size];
        var when = new DateTimeOffset(2026, 11, 21, 0, 0, second, TimeSpan.Zero);
        Assert.True(NoiseProtocol.CreateInitiation(_handshake, 7, Tai64N.FromDateTime(when), _random, message));
        Assert.True(_generator.AddMacs(message, now));
        return message;
    }

    [Fact]
    public void SourceBytes_AreAddressThenBigEndianPort()
    {
        Assert.Equal(6, _sourceLength);
        Assert.Equal(new byte[] { 10, 99, 0, 1, 0xCA, 0x6C }, Source.ToArray());
        var v6 = new byte[18];
        Assert.Equal(18, WriteSource("[::1]:1", v6));
        Assert.Equal(1, v6[17]);
    }

    [Fact]
    public void Mac1_IsCheckedOnEveryMessage()
    {
        byte[] message = Initiation(T0);
        Assert.True(_checker.CheckMac1(message));
        // mac2 is zero while there is no cookie.
        Assert.All(message[MessageInitiation.Mac2Offset..], b => Assert.Equal(0, b));

        // Any change before mac2, including the sender index that Noise does not authenticate.
        for (int i = 0; i < MessageInitiation.Mac2Offset; i++)
        {
            message[i] ^= 0x01;
            Assert.False(_checker.CheckMac1(message));
            message[i] ^= 0x01;
        }
    }

    [Fact]
    public void Mac1_ForAnotherResponder_IsDropped()
    {
        using var otherKey = PrivateKey.Generate(_random);
        using var other = new CookieChecker(otherKey.PublicKey, _random);
        byte[] message = Initiation(T0);
        Assert.False(other.CheckMac1(message));
        Assert.False(_checker.CheckMac1(new byte[60]));
    }

    [Fact]
    public void UnderLoad_CookieReplyThenMac2Valid()
    {
        byte[] first = Initiation(T0);
        Assert.False(_checker.CheckMac2(first, Source, T0));

        var reply = new byte[MessageCookieReply.Size];
        Assert.True(_checker.CreateReply(first, Source, T0, reply));
        Assert.Equal(MessageType.CookieReply, MessageHeader.ReadType(reply));
        Assert.Equal(7u, MessageCookieReply.ReceiverIndex(reply));

        Assert.False(_generator.HasCookie(T0));
        Assert.True(_generator.ConsumeReply(reply, T0 + TimeSpan.FromMilliseconds(5)));
        Assert.True(_generator.HasCookie(T0 + TimeSpan.FromSeconds(1)));

        byte[] retry = Initiation(T0 + TimeSpan.FromSeconds(1), second: 1);
        Assert.Contains(retry[MessageInitiation.Mac2Offset..], b => b != 0);
        Assert.True(_checker.CheckMac2(retry, Source, T0 + TimeSpan.FromSeconds(1)));

        // The cookie is bound to the source address and port.
        var otherSource = new byte[18];
        int n = WriteSource("10.99.0.1:51821", otherSource);
        Assert.False(_checker.CheckMac2(retry, otherSource.AsSpan(0, n), T0 + TimeSpan.FromSeconds(1)));
    }

    private sealed class OnePeer(Handshake handshake) : IHandshakeLookup
    {
        public Handshake? FindByStaticKey(in PublicKey remoteStatic) =>
            remoteStatic == handshake.RemoteStatic ? handshake : null;
    }

    [Fact]
    public void UnderLoad_RetryWithCookie_CompletesTheHandshake()
    {
        var responder = new StaticIdentity(_responderKey);
        using var atResponder = new Handshake(responder, _initiatorKey.PublicKey);
        var peers = new OnePeer(atResponder);

        // The responder is under load: the first initiation only earns a cookie reply.
        byte[] first = Initiation(T0);
        Assert.True(_checker.CheckMac1(first));
        Assert.False(_checker.CheckMac2(first, Source, T0));
        var reply = new byte[MessageCookieReply.Size];
        Assert.True(_checker.CreateReply(first, Source, T0, reply));
        Assert.Equal(HandshakeStage.Zeroed, atResponder.Stage);

        // The initiator retries (the retransmit timer in the real peer) with mac2.
        Assert.True(_generator.ConsumeReply(reply, T0));
        var later = T0 + TimeSpan.FromSeconds(5);
        byte[] retry = Initiation(later, second: 5);
        Assert.True(_checker.CheckMac1(retry) && _checker.CheckMac2(retry, Source, later));
        Assert.Same(atResponder, NoiseProtocol.ConsumeInitiation(responder, peers, retry, later));
        var response = new byte[MessageResponse.Size];
        Assert.True(NoiseProtocol.CreateResponse(atResponder, 9, _random, response));
        Assert.True(NoiseProtocol.ConsumeResponse(_handshake, response));
        using var a = NoiseProtocol.BeginSession(_handshake)!;
        using var b = NoiseProtocol.BeginSession(atResponder)!;
        Assert.Equal(a.Send.Bytes.ToArray(), b.Receive.Bytes.ToArray());
    }

    [Fact]
    public void TamperedOrUnsolicitedCookieReply_IsRefused()
    {
        var reply = new byte[MessageCookieReply.Size];
        byte[] message = Initiation(T0);
        Assert.True(_checker.CreateReply(message, Source, T0, reply));

        for (int i = MessageCookieReply.NonceOffset; i < MessageCookieReply.Size; i++)
        {
            reply[i] ^= 0x20;
            Assert.False(_generator.ConsumeReply(reply, T0));
            reply[i] ^= 0x20;
        }
        Assert.False(_generator.ConsumeReply(reply.AsSpan(0, 63), T0));
        Assert.False(_generator.HasCookie(T0));

        // A reply to an older message (its mac1 is not our last one) is refused.
        Initiation(T0, second: 2);
        Assert.False(_generator.ConsumeReply(reply, T0));

        // A generator that never sent anything accepts no reply.
        using var fresh = new CookieGenerator(_responderKey.PublicKey);
        Assert.False(fresh.ConsumeReply(reply, T0));
    }

    [Fact]
    public void CookieSecret_RotatesAfter120Seconds()
    {
        byte[] first = Initiation(T0);
        var reply = new byte[MessageCookieReply.Size];
        Assert.True(_checker.CreateReply(first, Source, T0, reply));
        Assert.True(_generator.ConsumeReply(reply, T0));

        // The initiator uses the cookie up to 115 s; its mac2 counts until the secret is 120 s old.
        byte[] withCookie = Initiation(T0 + TimeSpan.FromSeconds(115), second: 1);
        Assert.True(_checker.CheckMac2(withCookie, Source, T0 + TimeSpan.FromSeconds(119)));

        // After 120 s the secret is expired: the same mac2 no longer counts.
        TimeSpan after = T0 + TimeSpan.FromSeconds(121);
        Assert.False(_checker.CheckMac2(withCookie, Source, after));

        // A new reply carries a cookie from a new secret; the old cookie would not match it.
        var newReply = new byte[MessageCookieReply.Size];
        Assert.True(_checker.CreateReply(withCookie, Source, after, newReply));
        Assert.False(_checker.CheckMac2(withCookie, Source, after));
        Assert.True(_generator.ConsumeReply(newReply, after));
        byte[] retry = Initiation(after, second: 2);
        Assert.True(_checker.CheckMac2(retry, Source, after));
    }

    [Fact]
    public void Generator_ForgetsCookie_COOKIE_SECRET_LATENCY_before_the_secret_would_rotate()
    {
        byte[] first = Initiation(T0);
        var reply = new byte[MessageCookieReply.Size];
        Assert.True(_checker.CreateReply(first, Source, T0, reply));
        Assert.True(_generator.ConsumeReply(reply, T0));
        // 120 s - 5 s: a mac2 sent later could reach a responder that has replaced its secret.
        Assert.True(_generator.HasCookie(T0 + TimeSpan.FromSeconds(115)));
        Assert.False(_generator.HasCookie(T0 + TimeSpan.FromSeconds(116)));
        byte[] late = Initiation(T0 + TimeSpan.FromSeconds(116), second: 1);
        Assert.All(late[MessageInitiation.Mac2Offset..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Replayed_cookie_reply_is_refused_and_refreshes_nothing()
    {
        byte[] first = Initiation(T0);
        var reply = new byte[MessageCookieReply.Size];
        Assert.True(_checker.CreateReply(first, Source, T0, reply));
        Assert.True(_generator.ConsumeReply(reply, T0));

        // The same reply again, 100 s later: the mac1 it answers was used up by the first.
        Assert.False(_generator.ConsumeReply(reply, T0 + TimeSpan.FromSeconds(100)));
        Assert.False(_generator.HasCookie(T0 + TimeSpan.FromSeconds(116)));
    }

    [Fact]
    public void ResponseMessages_CarryMacsToo()
    {
        // The initiator checks mac1 on the response with its own checker.
        using var initiatorChecker = new CookieChecker(_initiatorKey.PublicKey, _random);
        using var responderGenerator = new CookieGenerator(_initiatorKey.PublicKey);
        var message = new byte[MessageResponse.Size];
        MessageHeader.WriteType(message, MessageType.Response);
        Assert.True(responderGenerator.AddMacs(message, T0));
        Assert.True(initiatorChecker.CheckMac1(message));
        Assert.False(_checker.CheckMac1(message));
        Assert.False(responderGenerator.AddMacs(new byte[MessageResponse.Size], T0)); // not a response
    }
}
