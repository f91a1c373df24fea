using Tunnel.Crypto;
using Tunnel.Device;
using Tunnel.Tests.Noise;
using Xunit;

namespace Tunnel.Tests.Device;

/// <summary>
/// Random, truncated, oversized and wrongly typed datagrams given to every consumer of handshake
/// messages: none throws, none is accepted, and no handshake or cookie state changes.
/// </summary>
public sealed class MalformedInputTests : IDisposable
{
    private readonly SeededRandom _random = new(7);
    private readonly PrivateKey _aliceKey, _bobKey;
    private readonly StaticIdentity _bob;
    private readonly Handshake _aliceToBob, _bobToAlice;
    private readonly CookieGenerator _generator;
    private readonly CookieChecker _checker;

    private sealed class OnePeer(Handshake handshake) : IHandshakeLookup
    {
        public Handshake? FindByStaticKey(in PublicKey remoteStatic) =>
            remoteStatic == handshake.RemoteStatic ? handshake : null;
    }

    public MalformedInputTests()
    {
        _aliceKey = PrivateKey.Generate(_random);
        _bobKey = PrivateKey.Generate(_random);
        _bob = new StaticIdentity(_bobKey);
        _aliceToBob = new Handshake(new StaticIdentity(_aliceKey), _bobKey.PublicKey);
        _bobToAlice = new Handshake(_bob, _aliceKey.PublicKey);
        _generator = new CookieGenerator(_bobKey.PublicKey);
        _checker = new CookieChecker(_bobKey.PublicKey, _random);
    }

    public void Dispose()
    {
        _generator.Dispose();
        _checker.Dispose();
        _aliceToBob.Dispose();
        _bobToAlice.Dispose();
        _aliceKey.Dispose();
        _bobKey.Dispose();
    }

    private (HandshakeStage, uint, uint, Tai64N, byte[]) Snapshot(Handshake h) =>
        (h.Stage, h.LocalIndex, h.RemoteIndex, h.LastTimestamp, h.NoiseState.ToArray());

    [Fact]
    public void RandomDatagrams_AreDroppedWithoutStateChange()
    {
        // Put both sides mid-handshake so there is state to disturb.
        var initiation = new byte[MessageInitiation.Size];
        Assert.True(NoiseProtocol.CreateInitiation(_aliceToBob, 1, Tai64N.FromDateTime(DateTimeOffset.UnixEpoch.AddDays(20000)), _random, initiation));
        _generator.AddMacs(initiation, TimeSpan.Zero);
        Assert.NotNull(NoiseProtocol.ConsumeInitiation(_bob, new OnePeer(_bobToAlice), initiation, TimeSpan.Zero));

        var alice = Snapshot(_aliceToBob);
        var bob = Snapshot(_bobToAlice);
        var rng = new Random(42);
        int[] sizes = [0, 1, 3, 4, 31, 32, 63, 64, 65, 91, 92, 93, 147, 148, 149, 1500];
        for (int i = 0; i < 3000; i++)
        {
            var datagram = new byte[sizes[rng.Next(sizes.Length)]];
            rng.NextBytes(datagram);
            if (datagram.Length >= 4 && rng.Next(2) == 0)
                MessageHeader.WriteType(datagram, (MessageType)rng.Next(1, 5)); // valid header, bad body
            if (datagram.Length >= 12 && rng.Next(4) == 0)
                MessageHeader.WriteIndex(datagram, 8, 1); // the index Alice is waiting on

            Assert.Null(NoiseProtocol.ConsumeInitiation(_bob, new OnePeer(_bobToAlice), datagram, TimeSpan.FromSeconds(i + 1)));
            Assert.False(NoiseProtocol.ConsumeResponse(_aliceToBob, datagram));
            Assert.False(_generator.ConsumeReply(datagram, TimeSpan.Zero));
            Assert.False(_checker.CheckMac1(datagram));
        }
        Assert.Equal(alice, Snapshot(_aliceToBob), new SnapshotComparer());
        Assert.Equal(bob, Snapshot(_bobToAlice), new SnapshotComparer());
        Assert.False(_generator.HasCookie(TimeSpan.Zero));
    }

    private sealed class SnapshotComparer : IEqualityComparer<(HandshakeStage, uint, uint, Tai64N, byte[])>
    {
        public bool Equals((HandshakeStage, uint, uint, Tai64N, byte[]) x, (HandshakeStage, uint, uint, Tai64N, byte[]) y) =>
            x.Item1 == y.Item1 && x.Item2 == y.Item2 && x.Item3 == y.Item3 && x.Item4 == y.Item4 && x.Item5.SequenceEqual(y.Item5);

        public int GetHashCode((HandshakeStage, uint, uint, Tai64N, byte[]) obj) => 0;
    }
}
