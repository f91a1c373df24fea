using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Noise;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Device;

/// <summary>Two in-process parties running WireGuard's handshake through the product's API.</summary>
public sealed class HandshakeTests : IDisposable
{
    private sealed class Peers(params Handshake[] handshakes) : IHandshakeLookup
    {
        public Handshake? FindByStaticKey(in PublicKey remoteStatic)
        {
            foreach (var h in handshakes)
                if (h.RemoteStatic == remoteStatic)
                    return h;
            return null;
        }
    }

    private static readonly DateTimeOffset T0 = new(2026, 11, 21, 20, 0, 0, TimeSpan.Zero);

    private readonly SeededRandom _random = new(1234);
    private readonly PrivateKey _aliceKey;
    private readonly PrivateKey _bobKey;
    private readonly StaticIdentity _alice;
    private readonly StaticIdentity _bob;
    private readonly Handshake _aliceToBob;   // Alice's handshake state for peer Bob
    private readonly Handshake _bobToAlice;   // Bob's handshake state for peer Alice
    private readonly Peers _bobsPeers;

    public HandshakeTests()
    {
        _aliceKey = PrivateKey.Generate(_random);
        _bobKey = PrivateKey.Generate(_random);
        _alice = new StaticIdentity(_aliceKey);
        _bob = new StaticIdentity(_bobKey);
        _aliceToBob = new Handshake(_alice, _bobKey.PublicKey);
        _bobToAlice = new Handshake(_bob, _aliceKey.PublicKey);
        var psk = new byte[32];
        _random.Fill(psk);
        _aliceToBob.SetPresharedKey(psk);
        _bobToAlice.SetPresharedKey(psk);
        _bobsPeers = new Peers(_bobToAlice);
    }

    public void Dispose()
    {
        _aliceToBob.Dispose();
        _bobToAlice.Dispose();
        _aliceKey.Dispose();
        _bobKey.Dispose();
    }

    private TimeSpan _now = TimeSpan.FromSeconds(1);

    /// <summary>Virtual monotonic time, one second later at each call (clear of the flood limit).</summary>
    private TimeSpan Tick() => _now += TimeSpan.FromSeconds(1);

    private byte[] Initiation(DateTimeOffset when, uint index = 0x11111111)
    {
        var message = new byte[MessageInitiation.Size];
        Assert.True(NoiseProtocol.CreateInitiation(_aliceToBob, index, Tai64N.FromDateTime(when), _random, message));
        return message;
    }

    private byte[] Response(uint index = 0x22222222)
    {
        var message = new byte[MessageResponse.Size];
        Assert.True(NoiseProtocol.CreateResponse(_bobToAlice, index, _random, message));
        return message;
    }

    [Fact]
    public void FullHandshake_GivesMatchingTransportKeys()
    {
        byte[] initiation = Initiation(T0);
        Assert.Equal(HandshakeStage.InitiationCreated, _aliceToBob.Stage);
        Assert.Equal(MessageType.Initiation, MessageHeader.ReadType(initiation));
        Assert.Equal(0x11111111u, MessageInitiation.SenderIndex(initiation));

        Assert.Same(_bobToAlice, NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, initiation, Tick()));
        Assert.Equal(HandshakeStage.InitiationConsumed, _bobToAlice.Stage);
        Assert.Equal(0x11111111u, _bobToAlice.RemoteIndex);
        Assert.Equal(Tai64N.FromDateTime(T0), _bobToAlice.LastTimestamp);

        byte[] response = Response();
        Assert.Equal(0x11111111u, MessageResponse.ReceiverIndex(response));
        Assert.Equal(0x22222222u, MessageResponse.SenderIndex(response));
        Assert.True(NoiseProtocol.ConsumeResponse(_aliceToBob, response));
        Assert.Equal(0x22222222u, _aliceToBob.RemoteIndex);

        Assert.Equal(_aliceToBob.HandshakeHash.ToArray(), _bobToAlice.HandshakeHash.ToArray());

        using var aliceKeys = NoiseProtocol.BeginSession(_aliceToBob)!;
        using var bobKeys = NoiseProtocol.BeginSession(_bobToAlice)!;
        Assert.True(aliceKeys.IsInitiator);
        Assert.False(bobKeys.IsInitiator);
        Assert.Equal(aliceKeys.Send.Bytes.ToArray(), bobKeys.Receive.Bytes.ToArray());
        Assert.Equal(aliceKeys.Receive.Bytes.ToArray(), bobKeys.Send.Bytes.ToArray());
        Assert.NotEqual(aliceKeys.Send.Bytes.ToArray(), aliceKeys.Receive.Bytes.ToArray());
        Assert.Equal((0x11111111u, 0x22222222u), (aliceKeys.LocalIndex, aliceKeys.RemoteIndex));
        Assert.Equal((0x22222222u, 0x11111111u), (bobKeys.LocalIndex, bobKeys.RemoteIndex));

        // The handshakes are zeroed and cannot yield keys twice.
        Assert.Equal(HandshakeStage.Zeroed, _aliceToBob.Stage);
        Assert.All(_aliceToBob.NoiseState.ToArray(), b => Assert.Equal(0, b));
        Assert.All(_bobToAlice.NoiseState.ToArray(), b => Assert.Equal(0, b));
        Assert.Null(NoiseProtocol.BeginSession(_aliceToBob));

        // A transport message sealed by one side opens on the other.
        byte[] packet = "hello through the tunnel"u8.ToArray();
        var nonce = new byte[12];
        CipherState.WriteNonce(nonce, 0);
        var box = new byte[packet.Length + 16];
        Sodium.ChaCha20Poly1305Encrypt(box, packet, default, nonce, aliceKeys.Send.Bytes);
        var opened = new byte[packet.Length];
        Assert.True(Sodium.ChaCha20Poly1305Decrypt(opened, box, default, nonce, bobKeys.Receive.Bytes));
        Assert.Equal(packet, opened);
    }

    [Fact]
    public void DifferentPresharedKeys_FailAtTheResponse()
    {
        _bobToAlice.SetPresharedKey(new byte[32]);
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0), Tick()));
        Assert.False(NoiseProtocol.ConsumeResponse(_aliceToBob, Response()));
        Assert.Equal(HandshakeStage.InitiationCreated, _aliceToBob.Stage);
    }

    [Fact]
    public void TamperedInitiation_IsRefusedAndChangesNothing()
    {
        byte[] initiation = Initiation(T0);
        // Every byte Noise authenticates, and the type word. The sender index is covered by mac1
        // only (see CookieTests), as in WireGuard.
        var positions = Enumerable.Range(0, 4).Concat(Enumerable.Range(MessageInitiation.NoiseOffset, MessageInitiation.NoiseLength));
        foreach (int i in positions)
        {
            initiation[i] ^= 0x04;
            Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, initiation, Tick()));
            initiation[i] ^= 0x04;
        }
        Assert.Equal(HandshakeStage.Zeroed, _bobToAlice.Stage);
        Assert.Equal(default, _bobToAlice.LastTimestamp);
        Assert.All(_bobToAlice.NoiseState.ToArray(), b => Assert.Equal(0, b));
        // The untouched message still works.
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, initiation, Tick()));
    }

    [Fact]
    public void TamperedResponse_IsRefusedAndChangesNothing()
    {
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0), Tick()));
        byte[] response = Response();
        byte[] stateBefore = _aliceToBob.NoiseState.ToArray();
        // The type word, the receiver index and everything Noise authenticates (the sender index
        // is covered by mac1 only).
        var positions = Enumerable.Range(0, 4).Concat(Enumerable.Range(MessageResponse.ReceiverOffset, MessageResponse.Mac1Offset - MessageResponse.ReceiverOffset));
        foreach (int i in positions)
        {
            response[i] ^= 0x10;
            Assert.False(NoiseProtocol.ConsumeResponse(_aliceToBob, response));
            response[i] ^= 0x10;
        }
        Assert.Equal(HandshakeStage.InitiationCreated, _aliceToBob.Stage);
        Assert.Equal(stateBefore, _aliceToBob.NoiseState.ToArray());
        Assert.True(NoiseProtocol.ConsumeResponse(_aliceToBob, response));
    }

    [Fact]
    public void ReplayedInitiation_SameOrOlderTimestamp_IsRefused()
    {
        byte[] first = Initiation(T0);
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, first, Tick()));
        byte[] stateAfterFirst = _bobToAlice.NoiseState.ToArray();

        // The very same bytes again: same timestamp.
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, first, Tick()));
        // A fresh initiation within the same whitened 16.8 ms: same timestamp.
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0.AddTicks(1)), Tick()));
        // An older clock (a VM restored from a snapshot).
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0.AddSeconds(-30)), Tick()));
        Assert.Equal(stateAfterFirst, _bobToAlice.NoiseState.ToArray());
        Assert.Equal(Tai64N.FromDateTime(T0), _bobToAlice.LastTimestamp);

        // Newer is accepted, and the last timestamp survives Clear().
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0.AddSeconds(1)), Tick()));
        _bobToAlice.Clear();
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0.AddSeconds(1)), Tick()));
    }

    [Fact]
    public void InitiationFlood_WithinOneFiftiethSecond_IsRefused()
    {
        var start = TimeSpan.FromSeconds(100);
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0), start));
        byte[] second = Initiation(T0.AddSeconds(1));
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, second, start + TimeSpan.FromMilliseconds(19)));
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, second, start + NoiseProtocol.MinInitiationInterval));
    }

    [Fact]
    public void InitiationFromUnknownPeer_OrToAnotherResponder_IsRefused()
    {
        byte[] initiation = Initiation(T0);
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, new Peers(), initiation, Tick()));
        using var carolKey = PrivateKey.Generate(_random);
        var carol = new StaticIdentity(carolKey);
        using var carolToAlice = new Handshake(carol, _aliceKey.PublicKey);
        Assert.Null(NoiseProtocol.ConsumeInitiation(carol, new Peers(carolToAlice), initiation, Tick()));
    }

    [Fact]
    public void WrongSizeOrType_IsRefused()
    {
        byte[] initiation = Initiation(T0);
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, initiation.AsSpan(0, 147), Tick()));
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, [.. initiation, 0], Tick()));
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, ReadOnlySpan<byte>.Empty, Tick()));
        initiation[1] = 1; // a reserved byte
        Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, initiation, Tick()));

        Assert.False(NoiseProtocol.ConsumeResponse(_aliceToBob, new byte[MessageResponse.Size]));
        Assert.False(NoiseProtocol.ConsumeResponse(_aliceToBob, new byte[3]));
        Assert.False(NoiseProtocol.CreateInitiation(_aliceToBob, 1, Tai64N.FromDateTime(T0), _random, new byte[100]));
        // A response without a consumed initiation cannot be created.
        Assert.False(NoiseProtocol.CreateResponse(_aliceToBob, 1, _random, new byte[MessageResponse.Size]));
    }

    [Fact]
    public void ResponseForAnotherIndex_IsRefused()
    {
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, Initiation(T0), Tick()));
        byte[] response = Response();
        MessageHeader.WriteIndex(response, MessageResponse.ReceiverOffset, 0xDEADBEEF);
        Assert.False(NoiseProtocol.ConsumeResponse(_aliceToBob, response));
    }

    [Fact]
    public void LowOrderPeerKey_CannotHandshake()
    {
        using var bad = new Handshake(_alice, new PublicKey(new byte[32]));
        Assert.False(bad.CanHandshake);
        Assert.False(NoiseProtocol.CreateInitiation(bad, 1, Tai64N.FromDateTime(T0), _random, new byte[MessageInitiation.Size]));
        Assert.Equal(HandshakeStage.Zeroed, bad.Stage);
    }

    [Fact]
    public void Clear_ZeroesTheHandshakeInProgress()
    {
        Initiation(T0);
        Assert.Contains(_aliceToBob.NoiseState.ToArray(), b => b != 0);
        _aliceToBob.Clear();
        Assert.Equal(HandshakeStage.Zeroed, _aliceToBob.Stage);
        Assert.Equal(0u, _aliceToBob.LocalIndex);
        Assert.All(_aliceToBob.NoiseState.ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void DeterministicRandom_GivesDeterministicMessages()
    {
        // The same generator state yields the same ephemeral key: what a VM snapshot copies.
        var a = new byte[MessageInitiation.Size];
        var b = new byte[MessageInitiation.Size];
        Assert.True(NoiseProtocol.CreateInitiation(_aliceToBob, 1, Tai64N.FromDateTime(T0), new SeededRandom(5), a));
        Assert.True(NoiseProtocol.CreateInitiation(_aliceToBob, 1, Tai64N.FromDateTime(T0), new SeededRandom(5), b));
        Assert.Equal(a, b);
        Assert.True(NoiseProtocol.CreateInitiation(_aliceToBob, 1, Tai64N.FromDateTime(T0), new SeededRandom(6), b));
        Assert.NotEqual(a, b);
    }
}
