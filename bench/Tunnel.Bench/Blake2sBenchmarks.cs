using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Tunnel.Crypto;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// The project's own BLAKE2s (RFC 7693) and what the handshake builds on it, at the sizes WireGuard
/// feeds them: HASH of a 32-byte key or hash, of a 128-byte block, and of a 1420-byte packet;
/// keyed BLAKE2s with a 16-byte output over the 116 bytes that mac1 covers in an initiation; HMAC
/// and the KDF on a 32-byte chaining key and a 32-byte input (a DH result or a public key), as
/// MixKey (Kdf2) and MixKeyAndHash (Kdf3) call them.
/// </summary>
[MemoryDiagnoser]
public class Blake2sBenchmarks
{
    private readonly byte[] _data = new byte[1420];
    private readonly byte[] _key = new byte[32];
    private readonly byte[] _input = new byte[32];
    private readonly byte[] _out32 = new byte[32];
    private readonly byte[] _out16 = new byte[16];
    private readonly byte[] _t2 = new byte[32];
    private readonly byte[] _t3 = new byte[32];

    [GlobalSetup]
    public void Setup()
    {
        RandomNumberGenerator.Fill(_data);
        RandomNumberGenerator.Fill(_key);
        RandomNumberGenerator.Fill(_input);
    }

    [Benchmark]
    [Arguments(32)]
    [Arguments(128)]
    [Arguments(1420)]
    public void Hash256(int length) => Blake2s.Hash(_data.AsSpan(0, length), _out32);

    /// <summary>mac1 of an initiation: keyed BLAKE2s-128 over the message up to mac1.</summary>
    [Benchmark]
    public void Mac128Mac1() => Blake2s.Mac(_key, _data.AsSpan(0, MessageInitiation.Mac1Offset), _out16);

    [Benchmark]
    public void HmacBlake2s32() => HmacBlake2s.Compute(_key, _input, _out32);

    [Benchmark]
    public void Kdf2() => Kdf.Kdf2(_out32, _t2, _key, _input);

    [Benchmark]
    public void Kdf3() => Kdf.Kdf3(_out32, _t2, _t3, _key, _input);
}
