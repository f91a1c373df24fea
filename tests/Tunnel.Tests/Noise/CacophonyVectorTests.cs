using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Noise;
using Tunnel.Tests.Vectors;
using Xunit;

namespace Tunnel.Tests.Noise;

/// <summary>
/// cacophony's Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector, run through the product's handshake
/// code (<see cref="NoiseProtocol"/>'s inner layer on real <see cref="Handshake"/> objects), with
/// the vector's prologue and payloads instead of WireGuard's identifier, TAI64N and empty payload.
/// </summary>
public class CacophonyVectorTests
{
    private sealed class OnePeer(Handshake handshake) : IHandshakeLookup
    {
        public Handshake? FindByStaticKey(in PublicKey remoteStatic) =>
            remoteStatic == handshake.RemoteStatic ? handshake : null;
    }

    [Fact]
    public void IKpsk2_MessagesHandshakeHashAndTransport()
    {
        var v = VectorFile.Load("cacophony_ikpsk2.json");
        Assert.Equal(NoiseConstruction.IKpsk2Name, v.GetProperty("name").GetString());
        var messages = v.GetProperty("messages").EnumerateArray().ToList();
        var construction = new NoiseConstruction(v.Hex("init_prologue"));

        using var initiatorKey = PrivateKey.Import(v.Hex("init_static"));
        using var responderKey = PrivateKey.Import(v.Hex("resp_static"));
        Assert.Equal(v.Hex("init_remote_static"), responderKey.PublicKey.Bytes.ToArray());
        var initiatorId = new StaticIdentity(initiatorKey, construction);
        var responderId = new StaticIdentity(responderKey, construction);

        using var atInitiator = new Handshake(initiatorId, responderKey.PublicKey);
        atInitiator.SetPresharedKey(v.Hex("init_psk"));
        using var atResponder = new Handshake(responderId, initiatorKey.PublicKey);
        atResponder.SetPresharedKey(v.Hex("resp_psk"));

        // -> e, es, s, ss, payload
        byte[] payload0 = messages[0].Hex("payload");
        var message0 = new byte[HandshakeState.MessageALength(payload0.Length)];
        Assert.True(NoiseProtocol.CreateInitiation(atInitiator, 1, new FixedRandom(v.Hex("init_ephemeral")), payload0, message0));
        Assert.Equal(messages[0].Hex("ciphertext"), message0);

        var scratch = new byte[HandshakeState.Size];
        var read0 = new byte[payload0.Length];
        var found = NoiseProtocol.ReadInitiation(responderId, new OnePeer(atResponder), message0, read0, scratch);
        Assert.Same(atResponder, found);
        Assert.Equal(payload0, read0);
        Assert.True(NoiseProtocol.AcceptInitiation(atResponder, scratch, remoteIndex: 1, timestamp: null, now: null));

        // <- e, ee, se, psk, payload
        byte[] payload1 = messages[1].Hex("payload");
        var message1 = new byte[HandshakeState.MessageBLength(payload1.Length)];
        Assert.True(NoiseProtocol.CreateResponse(atResponder, 2, new FixedRandom(v.Hex("resp_ephemeral")), payload1, message1));
        Assert.Equal(messages[1].Hex("ciphertext"), message1);

        var read1 = new byte[payload1.Length];
        Assert.True(NoiseProtocol.ConsumeResponse(atInitiator, 2, message1, read1));
        Assert.Equal(payload1, read1);

        Assert.Equal(v.Hex("handshake_hash"), atInitiator.HandshakeHash.ToArray());
        Assert.Equal(v.Hex("handshake_hash"), atResponder.HandshakeHash.ToArray());

        using var initiatorKeys = NoiseProtocol.BeginSession(atInitiator)!;
        using var responderKeys = NoiseProtocol.BeginSession(atResponder)!;
        Assert.True(initiatorKeys.IsInitiator);
        Assert.False(responderKeys.IsInitiator);

        // Transport: initiator and responder alternate, each with its own nonce 0, 1, ...
        // and empty associated data, as WireGuard's transport messages (counter = nonce).
        var nonce = new byte[12];
        for (int i = 2; i < messages.Count; i++)
        {
            bool fromInitiator = i % 2 == 0;
            var sender = fromInitiator ? initiatorKeys : responderKeys;
            var receiver = fromInitiator ? responderKeys : initiatorKeys;
            CipherState.WriteNonce(nonce, (ulong)(i - 2) / 2);
            byte[] payload = messages[i].Hex("payload");
            var box = new byte[payload.Length + 16];
            Sodium.ChaCha20Poly1305Encrypt(box, payload, default, nonce, sender.Send.Bytes);
            Assert.Equal(messages[i].Hex("ciphertext"), box);
            var opened = new byte[payload.Length];
            Assert.True(Sodium.ChaCha20Poly1305Decrypt(opened, box, default, nonce, receiver.Receive.Bytes));
            Assert.Equal(payload, opened);
        }

        // The handshake's secrets are gone once the session keys exist.
        Assert.Equal(HandshakeStage.Zeroed, atInitiator.Stage);
        Assert.All(atInitiator.NoiseState.ToArray(), b => Assert.Equal(0, b));
        Assert.All(atResponder.NoiseState.ToArray(), b => Assert.Equal(0, b));
    }
}
