using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using ForkNotify;
using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// A whole WireGuard handshake between two in-process parties through the product's API, as the
/// device will drive it: Alice creates an initiation and adds mac1; Bob checks mac1, consumes it
/// and answers; Alice checks mac1 on the response and consumes it; both derive their transport
/// keys (BeginSession), which are then disposed. Also X25519 alone, the handshake's dominant cost
/// (four DH per side, plus one base-point multiplication per ephemeral key).
/// </summary>
/// <remarks>
/// Randomness comes from the operating system (<see cref="OsRandomGenerator"/>, getrandom), as in
/// the daemon. Each handshake uses a later TAI64N timestamp and a monotonic time 1 s later than the
/// last, so the responder's replay and flood checks pass every time (they are part of the cost).
/// Not under load: no mac2, no cookie reply.
/// </remarks>
[MemoryDiagnoser]
public class HandshakeBenchmarks
{
    private sealed class SinglePeer(Handshake handshake) : IHandshakeLookup
    {
        public Handshake? FindByStaticKey(in PublicKey remoteStatic) =>
            handshake.RemoteStatic == remoteStatic ? handshake : null;
    }

    private readonly IRandomGenerator _random = OsRandomGenerator.Instance;
    private readonly byte[] _initiation = new byte[MessageInitiation.Size];
    private readonly byte[] _response = new byte[MessageResponse.Size];
    private readonly byte[] _scalar = new byte[32];
    private readonly byte[] _point = new byte[32];
    private readonly byte[] _shared = new byte[32];

    private PrivateKey _aliceKey = null!, _bobKey = null!;
    private StaticIdentity _alice = null!, _bob = null!;
    private Handshake _aliceToBob = null!, _bobToAlice = null!;
    private SinglePeer _bobsPeers = null!;
    private CookieGenerator _aliceCookies = null!, _bobCookies = null!;
    private CookieChecker _aliceChecker = null!, _bobChecker = null!;
    private ulong _seconds;

    [GlobalSetup]
    public void Setup()
    {
        _aliceKey = PrivateKey.Generate(_random);
        _bobKey = PrivateKey.Generate(_random);
        _alice = new StaticIdentity(_aliceKey);
        _bob = new StaticIdentity(_bobKey);
        _aliceToBob = new Handshake(_alice, _bobKey.PublicKey);
        _bobToAlice = new Handshake(_bob, _aliceKey.PublicKey);
        Span<byte> psk = stackalloc byte[32];
        _random.Fill(psk);
        _aliceToBob.SetPresharedKey(psk);
        _bobToAlice.SetPresharedKey(psk);
        CryptographicOperations.ZeroMemory(psk);
        _bobsPeers = new SinglePeer(_bobToAlice);
        _aliceCookies = new CookieGenerator(_bobKey.PublicKey);   // Alice's macs are keyed to Bob
        _bobCookies = new CookieGenerator(_aliceKey.PublicKey);
        _aliceChecker = new CookieChecker(_aliceKey.PublicKey, _random);
        _bobChecker = new CookieChecker(_bobKey.PublicKey, _random);

        _random.Fill(_scalar);
        PrivateKey.Clamp(_scalar);
        _bobKey.PublicKey.CopyTo(_point);

        FullHandshake(); // throws if any step fails: the benchmark measures only successful work
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _aliceChecker.Dispose();
        _bobChecker.Dispose();
        _aliceCookies.Dispose();
        _bobCookies.Dispose();
        _aliceToBob.Dispose();
        _bobToAlice.Dispose();
        _aliceKey.Dispose();
        _bobKey.Dispose();
        CryptographicOperations.ZeroMemory(_scalar);
        CryptographicOperations.ZeroMemory(_shared);
    }

    [Benchmark]
    public void FullHandshake()
    {
        NextSecond();
        CreateInitiation();
        ConsumeInitiation();
        CreateResponse();
        ConsumeResponse();
        BeginSessions();
    }

    // The steps of FullHandshake, one by one, for the handshake-steps harness (HandshakeSteps.cs).

    /// <summary>A later TAI64N timestamp and monotonic time for the next handshake.</summary>
    public void NextSecond() => _seconds++;

    private Tai64N Timestamp => new(Tai64N.Base + _seconds, 0);

    private TimeSpan Now => TimeSpan.FromSeconds(_seconds);

    /// <summary>Alice -> Bob: the initiation and its macs.</summary>
    public void CreateInitiation()
    {
        if (!NoiseProtocol.CreateInitiation(_aliceToBob, 0x11111111, Timestamp, _random, _initiation)
            || !_aliceCookies.AddMacs(_initiation, Now))
            throw new InvalidOperationException("CreateInitiation failed.");
    }

    /// <summary>Bob checks mac1 and consumes the initiation.</summary>
    public void ConsumeInitiation()
    {
        if (!_bobChecker.CheckMac1(_initiation)
            || NoiseProtocol.ConsumeInitiation(_bob, _bobsPeers, _initiation, Now) is null)
            throw new InvalidOperationException("ConsumeInitiation failed.");
    }

    /// <summary>Bob -> Alice: the response and its macs.</summary>
    public void CreateResponse()
    {
        if (!NoiseProtocol.CreateResponse(_bobToAlice, 0x22222222, _random, _response)
            || !_bobCookies.AddMacs(_response, Now))
            throw new InvalidOperationException("CreateResponse failed.");
    }

    /// <summary>Alice checks mac1 and consumes the response.</summary>
    public void ConsumeResponse()
    {
        if (!_aliceChecker.CheckMac1(_response)
            || !NoiseProtocol.ConsumeResponse(_aliceToBob, _response))
            throw new InvalidOperationException("ConsumeResponse failed.");
    }

    /// <summary>Both sides: transport keys, then disposed.</summary>
    public void BeginSessions()
    {
        using var aliceKeys = NoiseProtocol.BeginSession(_aliceToBob) ?? throw new InvalidOperationException("Alice BeginSession failed.");
        using var bobKeys = NoiseProtocol.BeginSession(_bobToAlice) ?? throw new InvalidOperationException("Bob BeginSession failed.");
    }

    /// <summary>One X25519 with a peer's public key (a DH of the handshake).</summary>
    [Benchmark]
    public bool X25519() => Sodium.ScalarMult(_shared, _scalar, _point);

    /// <summary>X25519 with the base point: making an ephemeral public key.</summary>
    [Benchmark]
    public void X25519Base() => Sodium.ScalarMultBase(_shared, _scalar);
}
