using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using Tunnel.Device;

namespace Tunnel.Bench;

/// <summary>
/// Cryptokey routing's longest-prefix lookup (<see cref="AllowedIps{TPeer}.Lookup"/>), once per
/// packet sent (destination) and received (source), with a table of <see cref="Routes"/> random
/// IPv4 routes, or as many IPv6 routes, spread over 1,000 peers. Hits are addresses inside a
/// route of the table; misses are addresses no route covers (the packet is dropped).
/// </summary>
/// <remarks>
/// Route lengths: IPv4 uniform in /16../32, IPv6 uniform in /32../128 (from a seeded generator, so
/// every run builds the same tables). Short prefixes are left out so that misses still exist at
/// 100,000 routes. Each invocation looks up <see cref="Batch"/> different addresses, each hit
/// inside a different random route with random host bits, to defeat the branch predictor and the
/// cache as a real mix of destinations would; the table reports the time per lookup.
/// </remarks>
[MemoryDiagnoser]
public class AllowedIpsBenchmarks
{
    private const int Batch = 1024;
    private const int Peers = 1000;

    private sealed class Peer(int id)
    {
        public int Id { get; } = id;
    }

    private AllowedIps<Peer> _v4 = null!, _v6 = null!;
    private byte[] _hits4 = [], _misses4 = [], _hits6 = [], _misses6 = [];

    [Params(1_000, 100_000)]
    public int Routes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(20261121);
        var peers = new Peer[Peers];
        for (int i = 0; i < Peers; i++)
            peers[i] = new Peer(i);

        (_v4, _hits4, _misses4) = Build(random, peers, addressBytes: 4, minCidr: 16);
        (_v6, _hits6, _misses6) = Build(random, peers, addressBytes: 16, minCidr: 32);

        if (HitsIPv4() != Batch || MissesIPv4() != 0 || HitsIPv6() != Batch || MissesIPv6() != 0)
            throw new InvalidOperationException("Hit and miss addresses do not behave as built.");
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public int HitsIPv4() => LookupAll(_v4, _hits4, 4);

    [Benchmark(OperationsPerInvoke = Batch)]
    public int MissesIPv4() => LookupAll(_v4, _misses4, 4);

    [Benchmark(OperationsPerInvoke = Batch)]
    public int HitsIPv6() => LookupAll(_v6, _hits6, 16);

    [Benchmark(OperationsPerInvoke = Batch)]
    public int MissesIPv6() => LookupAll(_v6, _misses6, 16);

    private static int LookupAll(AllowedIps<Peer> table, byte[] addresses, int addressBytes)
    {
        int found = 0;
        for (int offset = 0; offset < addresses.Length; offset += addressBytes)
            found += table.Lookup(addresses.AsSpan(offset, addressBytes)) is null ? 0 : 1;
        return found;
    }

    private (AllowedIps<Peer> Table, byte[] Hits, byte[] Misses) Build(Random random, Peer[] peers, int addressBytes, int minCidr)
    {
        int bits = 8 * addressBytes;
        var table = new AllowedIps<Peer>();
        var prefixes = new UInt128[Routes];
        var cidrs = new int[Routes];
        Span<byte> address = stackalloc byte[16];
        for (int i = 0; i < Routes; i++)
        {
            cidrs[i] = random.Next(minCidr, bits + 1);
            prefixes[i] = RandomKey(random, bits);
            Write(prefixes[i], address[..addressBytes]);
            table.Insert(address[..addressBytes], cidrs[i], peers[i % peers.Length]);
        }

        var hits = new byte[Batch * addressBytes];
        for (int i = 0; i < Batch; i++)
        {
            // A random route, then random host bits below its prefix.
            int route = random.Next(Routes);
            UInt128 prefixMask = cidrs[route] == 0 ? UInt128.Zero : UInt128.MaxValue << (bits - cidrs[route]);
            if (bits == 32)
                prefixMask &= uint.MaxValue;
            UInt128 key = (prefixes[route] & prefixMask) | (RandomKey(random, bits) & ~prefixMask);
            Write(key, hits.AsSpan(i * addressBytes, addressBytes));
        }

        var misses = new byte[Batch * addressBytes];
        for (int i = 0; i < Batch; i++)
        {
            Span<byte> miss = misses.AsSpan(i * addressBytes, addressBytes);
            do
                Write(RandomKey(random, bits), miss);
            while (table.Lookup(miss) is not null);
        }
        return (table, hits, misses);
    }

    /// <summary>A uniformly random <paramref name="bits"/>-bit number in the low bits of a UInt128.</summary>
    private static UInt128 RandomKey(Random random, int bits)
    {
        Span<byte> bytes = stackalloc byte[16];
        random.NextBytes(bytes);
        UInt128 value = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        return bits == 128 ? value : value & uint.MaxValue;
    }

    private static void Write(UInt128 key, Span<byte> destination)
    {
        if (destination.Length == 4)
            BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)key);
        else
            BinaryPrimitives.WriteUInt128BigEndian(destination, key);
    }
}
