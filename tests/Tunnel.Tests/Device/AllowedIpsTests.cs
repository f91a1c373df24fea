using System.Buffers.Binary;
using System.Net;
using FsCheck;
using FsCheck.Fluent;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public sealed class AllowedIpsTests
{
    private sealed class Peer(string name)
    {
        public override string ToString() => name;
    }

    private static byte[] V4(byte a, byte b, byte c, byte d) => [a, b, c, d];

    private static byte[] V6(uint a, uint b, uint c, uint d)
    {
        var bytes = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, a);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), b);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), c);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), d);
        return bytes;
    }

    /// <summary>The kernel's selftest/allowedips.c static cases, in its order.</summary>
    [Fact]
    public void KernelSelftestStaticCases()
    {
        Peer a = new("a"), b = new("b"), c = new("c"), d = new("d"),
             e = new("e"), f = new("f"), g = new("g"), h = new("h");
        var t = new AllowedIps<Peer>();

        Assert.True(t.Insert(V4(192, 168, 4, 0), 24, a));
        Assert.True(t.Insert(V4(192, 168, 4, 4), 32, b));
        Assert.True(t.Insert(V4(192, 168, 0, 0), 16, c));
        Assert.True(t.Insert(V4(192, 95, 5, 64), 27, d));
        // replaces the previous entry, and masking is required
        Assert.True(t.Insert(V4(192, 95, 5, 65), 27, c));
        Assert.True(t.Insert(V6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128, d));
        Assert.True(t.Insert(V6(0x26075300, 0x60006b00, 0, 0), 64, c));
        Assert.True(t.Insert(V4(0, 0, 0, 0), 0, e));
        Assert.True(t.Insert(V6(0, 0, 0, 0), 0, e));
        // replaces the previous entry
        Assert.True(t.Insert(V6(0, 0, 0, 0), 0, f));
        Assert.True(t.Insert(V6(0x24046800, 0, 0, 0), 32, g));
        // masking is required
        Assert.True(t.Insert(V6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 64, h));
        Assert.True(t.Insert(V6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef), 128, a));
        Assert.True(t.Insert(V6(0x24446800, 0x40e40800, 0xdeaebeef, 0xdefbeef), 128, c));
        Assert.True(t.Insert(V6(0x24446800, 0xf0e40800, 0xeeaebeef, 0), 98, b));
        Assert.True(t.Insert(V4(64, 15, 112, 0), 20, g));
        // masking is required
        Assert.True(t.Insert(V4(64, 15, 123, 211), 25, h));
        Assert.True(t.Insert(V4(10, 0, 0, 0), 25, a));
        Assert.True(t.Insert(V4(10, 0, 0, 128), 25, b));
        Assert.True(t.Insert(V4(10, 1, 0, 0), 30, a));
        Assert.True(t.Insert(V4(10, 1, 0, 4), 30, b));
        Assert.True(t.Insert(V4(10, 1, 0, 8), 29, c));
        Assert.True(t.Insert(V4(10, 1, 0, 16), 29, d));
        Assert.Null(t.FindInvariantViolation());

        Assert.Same(a, t.Lookup(V4(192, 168, 4, 20)));
        Assert.Same(a, t.Lookup(V4(192, 168, 4, 0)));
        Assert.Same(b, t.Lookup(V4(192, 168, 4, 4)));
        Assert.Same(c, t.Lookup(V4(192, 168, 200, 182)));
        Assert.Same(c, t.Lookup(V4(192, 95, 5, 68)));
        Assert.Same(e, t.Lookup(V4(192, 95, 5, 96)));
        Assert.Same(d, t.Lookup(V6(0x26075300, 0x60006b00, 0, 0xc05f0543)));
        Assert.Same(c, t.Lookup(V6(0x26075300, 0x60006b00, 0, 0xc02e01ee)));
        Assert.Same(f, t.Lookup(V6(0x26075300, 0x60006b01, 0, 0)));
        Assert.Same(g, t.Lookup(V6(0x24046800, 0x40040806, 0, 0x1006)));
        Assert.Same(g, t.Lookup(V6(0x24046800, 0x40040806, 0x1234, 0x5678)));
        Assert.Same(f, t.Lookup(V6(0x240467ff, 0x40040806, 0x1234, 0x5678)));
        Assert.Same(f, t.Lookup(V6(0x24046801, 0x40040806, 0x1234, 0x5678)));
        Assert.Same(h, t.Lookup(V6(0x24046800, 0x40040800, 0x1234, 0x5678)));
        Assert.Same(h, t.Lookup(V6(0x24046800, 0x40040800, 0, 0)));
        Assert.Same(h, t.Lookup(V6(0x24046800, 0x40040800, 0x10101010, 0x10101010)));
        Assert.Same(a, t.Lookup(V6(0x24046800, 0x40040800, 0xdeadbeef, 0xdeadbeef)));
        Assert.Same(g, t.Lookup(V4(64, 15, 116, 26)));
        Assert.Same(g, t.Lookup(V4(64, 15, 127, 3)));
        Assert.Same(g, t.Lookup(V4(64, 15, 123, 1)));
        Assert.Same(h, t.Lookup(V4(64, 15, 123, 128)));
        Assert.Same(h, t.Lookup(V4(64, 15, 123, 129)));
        Assert.Same(a, t.Lookup(V4(10, 0, 0, 52)));
        Assert.Same(b, t.Lookup(V4(10, 0, 0, 220)));
        Assert.Same(a, t.Lookup(V4(10, 1, 0, 2)));
        Assert.Same(b, t.Lookup(V4(10, 1, 0, 6)));
        Assert.Same(c, t.Lookup(V4(10, 1, 0, 10)));
        Assert.Same(d, t.Lookup(V4(10, 1, 0, 20)));

        Assert.True(t.Insert(V4(1, 0, 0, 0), 32, a));
        Assert.True(t.Insert(V4(64, 0, 0, 0), 32, a));
        Assert.True(t.Insert(V4(128, 0, 0, 0), 32, a));
        Assert.True(t.Insert(V4(192, 0, 0, 0), 32, a));
        Assert.True(t.Insert(V4(255, 0, 0, 0), 32, a));
        t.RemoveByPeer(a);
        Assert.Null(t.FindInvariantViolation());
        Assert.NotSame(a, t.Lookup(V4(1, 0, 0, 0)));
        Assert.NotSame(a, t.Lookup(V4(64, 0, 0, 0)));
        Assert.NotSame(a, t.Lookup(V4(128, 0, 0, 0)));
        Assert.NotSame(a, t.Lookup(V4(192, 0, 0, 0)));
        Assert.NotSame(a, t.Lookup(V4(255, 0, 0, 0)));

        t.Clear();
        Assert.True(t.Insert(V4(192, 168, 0, 0), 16, a));
        Assert.True(t.Insert(V4(192, 168, 0, 0), 24, a));
        t.RemoveByPeer(a);
        Assert.NotSame(a, t.Lookup(V4(192, 168, 0, 1)));
        Assert.True(t.IsEmpty);

        // 128 host routes that each differ from all-ones in one bit: a deep chain of branch points
        // (the kernel's check that its fixed-size free stack is deep enough).
        for (int i = 0; i < 128; i++)
        {
            byte[] ip = Enumerable.Repeat((byte)0xff, 16).ToArray();
            ulong part = ~(1UL << (i % 64));
            BinaryPrimitives.WriteUInt64BigEndian(ip.AsSpan(i < 64 ? 8 : 0), part);
            Assert.True(t.Insert(ip, 128, a));
        }
        Assert.Null(t.FindInvariantViolation());
        Assert.Equal(128, t.Count);
        t.RemoveByPeer(a);
        Assert.True(t.IsEmpty);

        t.Clear();
        Assert.True(t.Insert(V4(192, 95, 5, 93), 27, a));
        Assert.True(t.Insert(V6(0x26075300, 0x60006b00, 0, 0xc05f0543), 128, a));
        Assert.True(t.Insert(V4(10, 1, 0, 20), 29, a));
        Assert.True(t.Insert(V6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 83, a));
        Assert.True(t.Insert(V6(0x26075300, 0x6d8a6bf8, 0xdab1f1df, 0xc05f1523), 21, a));
        IReadOnlyList<IPNetwork> entries = t.EntriesForPeer(a);
        Assert.Equal(
            new[]
            {
                new IPNetwork(new IPAddress(V4(192, 95, 5, 64)), 27),
                new IPNetwork(new IPAddress(V6(0x26075300, 0x60006b00, 0, 0xc05f0543)), 128),
                new IPNetwork(new IPAddress(V4(10, 1, 0, 16)), 29),
                new IPNetwork(new IPAddress(V6(0x26075300, 0x6d8a6bf8, 0xdab1e000, 0)), 83),
                new IPNetwork(new IPAddress(V6(0x26075000, 0, 0, 0)), 21),
            },
            entries);
    }

    [Fact]
    public void HostBitsAreMaskedOnInsert()
    {
        var p = new Peer("p");
        var t = new AllowedIps<Peer>();
        Assert.True(t.Insert(IPAddress.Parse("10.0.0.5"), 24, p));
        Assert.Equal(new[] { IPNetwork.Parse("10.0.0.0/24") }, t.EntriesForPeer(p));
        Assert.Same(p, t.Lookup(V4(10, 0, 0, 200)));
        Assert.Null(t.Lookup(V4(10, 0, 1, 0)));

        Assert.True(t.Insert(IPAddress.Parse("fd00::1234:5678"), 64, p));
        Assert.Equal(IPNetwork.Parse("fd00::/64"), t.EntriesForPeer(p)[1]);
    }

    [Fact]
    public void IPNetworkOverloads()
    {
        var p = new Peer("p");
        var t = new AllowedIps<Peer>();
        Assert.True(t.Insert(IPNetwork.Parse("192.168.7.0/24"), p));
        Assert.True(t.Insert(IPNetwork.Parse("2001:db8::/32"), p));
        Assert.Same(p, t.Lookup(V4(192, 168, 7, 9)));
        Assert.Same(p, t.Lookup(V6(0x20010db8, 1, 2, 3)));
        Assert.True(t.Remove(IPNetwork.Parse("192.168.7.0/24"), p));
        Assert.False(t.Remove(IPNetwork.Parse("192.168.7.0/24"), p));
        Assert.Equal(new[] { IPNetwork.Parse("2001:db8::/32") }, t.EntriesForPeer(p));
    }

    [Fact]
    public void InvalidInputIsRefusedWithoutChange()
    {
        var p = new Peer("p");
        var t = new AllowedIps<Peer>();
        Assert.True(t.Insert(V4(10, 0, 0, 0), 8, p));

        Assert.False(t.Insert(V4(10, 0, 0, 0), 33, p));
        Assert.False(t.Insert(V4(10, 0, 0, 0), -1, p));
        Assert.False(t.Insert(V6(0, 0, 0, 0), 129, p));
        Assert.False(t.Insert(new byte[5], 8, p));
        Assert.False(t.Insert([], 0, p));
        Assert.False(t.Remove(new byte[3], 8, p));
        Assert.Null(t.Lookup(new byte[5]));
        Assert.Null(t.Lookup([]));

        Assert.Equal(new[] { IPNetwork.Parse("10.0.0.0/8") }, t.EntriesForPeer(p));
        Assert.Null(t.FindInvariantViolation());
    }

    [Fact]
    public void ReinsertingChangesOwnerAndMovesEntryToTheEnd()
    {
        Peer p = new("p"), q = new("q");
        var t = new AllowedIps<Peer>();
        t.Insert(V4(10, 0, 0, 0), 8, p);
        t.Insert(V4(172, 16, 0, 0), 12, p);
        t.Insert(V4(192, 168, 0, 0), 16, p);

        t.Insert(V4(10, 0, 0, 0), 8, q);
        Assert.Same(q, t.Lookup(V4(10, 1, 2, 3)));
        Assert.Equal(new[] { IPNetwork.Parse("172.16.0.0/12"), IPNetwork.Parse("192.168.0.0/16") }, t.EntriesForPeer(p));
        Assert.Equal(new[] { IPNetwork.Parse("10.0.0.0/8") }, t.EntriesForPeer(q));

        t.Insert(V4(172, 16, 0, 0), 12, p);
        Assert.Equal(new[] { IPNetwork.Parse("192.168.0.0/16"), IPNetwork.Parse("172.16.0.0/12") }, t.EntriesForPeer(p));
        Assert.Equal(3, t.Count);
    }

    [Fact]
    public void RemoveTakesOnlyTheExactPrefixOfThatPeer()
    {
        Peer p = new("p"), q = new("q");
        var t = new AllowedIps<Peer>();
        t.Insert(V4(10, 0, 0, 0), 8, p);
        t.Insert(V4(10, 1, 0, 0), 16, q);
        t.Insert(V4(10, 1, 2, 0), 24, p);

        Assert.False(t.Remove(V4(10, 1, 0, 0), 16, p));   // not p's
        Assert.False(t.Remove(V4(10, 0, 0, 0), 9, p));    // no such prefix
        Assert.False(t.Remove(V4(11, 0, 0, 0), 8, p));    // no such prefix
        Assert.Same(q, t.Lookup(V4(10, 1, 9, 9)));

        Assert.True(t.Remove(V4(10, 1, 77, 77), 16, q));  // host bits masked here too
        Assert.Same(p, t.Lookup(V4(10, 1, 9, 9)));        // falls back to the /8
        Assert.Same(p, t.Lookup(V4(10, 1, 2, 3)));
        Assert.True(t.Remove(IPAddress.Parse("10.0.0.0"), 8, p));
        Assert.Null(t.Lookup(V4(10, 1, 9, 9)));
        Assert.Same(p, t.Lookup(V4(10, 1, 2, 3)));
        Assert.Null(t.FindInvariantViolation());
        Assert.True(t.Remove(V4(10, 1, 2, 0), 24, p));
        Assert.True(t.IsEmpty);
        Assert.Empty(t.EntriesForPeer(p));
    }

    [Fact]
    public void FamiliesAreSeparate()
    {
        Peer p = new("p"), q = new("q");
        var t = new AllowedIps<Peer>();
        t.Insert(V4(0, 0, 0, 0), 0, p);
        Assert.Null(t.Lookup(V6(0, 0, 0, 0)));
        t.Insert(V6(0, 0, 0, 0), 0, q);
        Assert.Same(p, t.Lookup(V4(1, 2, 3, 4)));
        Assert.Same(q, t.Lookup(V6(1, 2, 3, 4)));
    }

    [Fact]
    public void LookupDoesNotAllocate()
    {
        var t = new AllowedIps<Peer>();
        var rng = new Random(7);
        var peers = Enumerable.Range(0, 20).Select(i => new Peer(i.ToString())).ToArray();
        var addr4 = new byte[4];
        var addr6 = new byte[16];
        for (int i = 0; i < 2000; i++)
        {
            rng.NextBytes(addr4);
            rng.NextBytes(addr6);
            t.Insert(addr4, rng.Next(0, 33), peers[rng.Next(peers.Length)]);
            t.Insert(addr6, rng.Next(0, 129), peers[rng.Next(peers.Length)]);
        }
        int hits = 0;
        long allocated = AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 50_000; i++)
            {
                addr4[i & 3] ^= (byte)i;
                addr6[i & 15] ^= (byte)i;
                if (t.Lookup(addr4) is not null) hits++;
                if (t.Lookup(addr6) is not null) hits++;
            }
        });
        Assert.Equal(0, allocated);
        Assert.True(hits > 0);
    }

    [Fact]
    public void ConcurrentLookupsSeeOnlyConsistentAnswersWhileWritersChangeTheTable()
    {
        // Stable routes that never change must always be found, whatever writers do around them;
        // churned routes may be found or not, but only ever with a peer that could own them.
        Peer stable = new("stable"), churnA = new("churnA"), churnB = new("churnB");
        var t = new AllowedIps<Peer>();
        t.Insert(V4(10, 0, 0, 0), 8, stable);
        t.Insert(V6(0xfd000000, 0, 0, 0), 16, stable);

        using var stop = new CancellationTokenSource();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var readers = Enumerable.Range(0, 2).Select(r => new Thread(() =>
        {
            var rng = new Random(r);
            var a4 = new byte[4];
            var a6 = new byte[16];
            while (!stop.IsCancellationRequested)
            {
                rng.NextBytes(a4);
                a4[0] = 10;
                Peer? got = t.Lookup(a4);
                if (got is null || (got != stable && got != churnA && got != churnB))
                    failures.Enqueue($"10.x lookup gave {got}");
                rng.NextBytes(a6);
                a6[0] = 0xfd; a6[1] = 0;
                got = t.Lookup(a6);
                if (got is null || (got != stable && got != churnA && got != churnB))
                    failures.Enqueue($"fd00::/16 lookup gave {got}");
            }
        })).ToArray();
        foreach (Thread reader in readers) reader.Start();

        var writerRng = new Random(99);
        var ip4 = new byte[4];
        var ip6 = new byte[16];
        for (int i = 0; i < 20_000; i++)
        {
            writerRng.NextBytes(ip4);
            ip4[0] = 10;
            writerRng.NextBytes(ip6);
            ip6[0] = 0xfd; ip6[1] = 0;
            Peer owner = (i & 1) == 0 ? churnA : churnB;
            t.Insert(ip4, writerRng.Next(9, 33), owner);
            t.Insert(ip6, writerRng.Next(17, 129), owner);
            if (i % 100 == 99)
                t.RemoveByPeer(i % 200 == 199 ? churnA : churnB);
        }
        stop.Cancel();
        foreach (Thread reader in readers) reader.Join();

        Assert.Empty(failures);
        Assert.Null(t.FindInvariantViolation());
    }

    // ---- Property tests against a naive list (the kernel's "horrible_allowedips") ----

    private sealed record Route(byte[] Network, int Cidr, Peer Peer);

    /// <summary>A flat list; lookup scans for the longest matching prefix.</summary>
    private sealed class NaiveAllowedIps
    {
        public readonly List<Route> Routes = []; // in order of last insertion

        public static byte[] MaskOf(byte[] address, int cidr)
        {
            var masked = (byte[])address.Clone();
            for (int bit = cidr; bit < masked.Length * 8; bit++)
                masked[bit / 8] &= (byte)~(0x80 >> (bit % 8));
            return masked;
        }

        public void Insert(byte[] address, int cidr, Peer peer)
        {
            byte[] network = MaskOf(address, cidr);
            Routes.RemoveAll(r => r.Cidr == cidr && r.Network.AsSpan().SequenceEqual(network));
            Routes.Add(new Route(network, cidr, peer));
        }

        public bool Remove(byte[] address, int cidr, Peer peer)
        {
            byte[] network = MaskOf(address, cidr);
            return Routes.RemoveAll(r => r.Cidr == cidr && r.Peer == peer && r.Network.AsSpan().SequenceEqual(network)) > 0;
        }

        public void RemoveByPeer(Peer peer) => Routes.RemoveAll(r => r.Peer == peer);

        public Peer? Lookup(byte[] address)
        {
            Route? best = null;
            foreach (Route r in Routes)
            {
                if (r.Network.Length == address.Length
                    && MaskOf(address, r.Cidr).AsSpan().SequenceEqual(r.Network)
                    && (best is null || r.Cidr > best.Cidr))
                    best = r;
            }
            return best?.Peer;
        }

        public List<IPNetwork> EntriesFor(Peer peer) =>
            Routes.Where(r => r.Peer == peer).Select(r => new IPNetwork(new IPAddress(r.Network), r.Cidr)).ToList();
    }

    private enum OpKind { Insert, Remove, RemoveByPeer }

    private sealed record Op(OpKind Kind, byte[] Address, int Cidr, int Peer);

    private static readonly Peer[] PropertyPeers = Enumerable.Range(0, 6).Select(i => new Peer($"p{i}")).ToArray();

    /// <summary>
    /// Addresses that share long prefixes with one another (so that routes nest and branch), as the
    /// kernel's random test does by mutating the tail of a few base addresses.
    /// </summary>
    private static Gen<byte[]> Addresses(int length)
    {
        var bases = length == 4
            ? new[] { V4(10, 0, 0, 0), V4(192, 168, 1, 0), V4(10, 128, 64, 32), V4(255, 255, 255, 255), V4(0, 0, 0, 0) }
            : new[] { V6(0xfd000000, 0, 0, 0), V6(0x20010db8, 0x12345678, 0, 1), V6(0xfd000000, 0x80000000, 0, 0),
                      V6(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff), V6(0, 0, 0, 0) };
        return Gen.Elements(bases).SelectMany(b =>
            Gen.Choose(0, length * 8).SelectMany(keep =>
                Gen.ArrayOf(Gen.Choose(0, 255).Select(x => (byte)x), length).Select(noise =>
                {
                    var result = (byte[])b.Clone();
                    for (int bit = keep; bit < length * 8; bit++)
                    {
                        byte m = (byte)(0x80 >> (bit % 8));
                        result[bit / 8] = (byte)((result[bit / 8] & ~m) | (noise[bit / 8] & m));
                    }
                    return result;
                })));
    }

    private static Gen<Op> Ops(int length) =>
        Gen.Frequency(
            (12, Addresses(length).SelectMany(a => Gen.Choose(0, length * 8).SelectMany(cidr =>
                Gen.Choose(0, PropertyPeers.Length - 1).Select(p => new Op(OpKind.Insert, a, cidr, p))))),
            (3, Addresses(length).SelectMany(a => Gen.Choose(0, length * 8).SelectMany(cidr =>
                Gen.Choose(0, PropertyPeers.Length - 1).Select(p => new Op(OpKind.Remove, a, cidr, p))))),
            (1, Gen.Choose(0, PropertyPeers.Length - 1).Select(p => new Op(OpKind.RemoveByPeer, [], 0, p))));

    private static Gen<(Op[] Ops, byte[][] Probes)> Scenario(int length) =>
        Gen.ArrayOf(Ops(length)).SelectMany(ops =>
            Gen.ArrayOf(Addresses(length)).Select(probes => (ops, probes)));

    private static bool RunScenario(Op[] ops, byte[][] probes)
    {
        var trie = new AllowedIps<Peer>();
        var model = new NaiveAllowedIps();
        foreach (Op op in ops)
        {
            Peer peer = PropertyPeers[op.Peer];
            switch (op.Kind)
            {
                case OpKind.Insert:
                    if (!trie.Insert(op.Address, op.Cidr, peer)) return false;
                    model.Insert(op.Address, op.Cidr, peer);
                    break;
                case OpKind.Remove:
                    if (trie.Remove(op.Address, op.Cidr, peer) != model.Remove(op.Address, op.Cidr, peer)) return false;
                    break;
                case OpKind.RemoveByPeer:
                    trie.RemoveByPeer(peer);
                    model.RemoveByPeer(peer);
                    break;
            }
            if (trie.FindInvariantViolation() is not null) return false;
        }

        // Probe random addresses, each route's own network, and addresses just inside it.
        IEnumerable<byte[]> all = probes
            .Concat(model.Routes.Select(r => r.Network))
            .Concat(ops.Where(o => o.Kind == OpKind.Insert).Select(o => o.Address));
        foreach (byte[] probe in all)
        {
            if (!ReferenceEquals(trie.Lookup(probe), model.Lookup(probe)))
                return false;
        }
        foreach (Peer peer in PropertyPeers)
        {
            if (!trie.EntriesForPeer(peer).SequenceEqual(model.EntriesFor(peer)))
                return false;
        }
        if (trie.Count != model.Routes.Count)
            return false;

        foreach (Peer peer in PropertyPeers)
            trie.RemoveByPeer(peer);
        return trie.IsEmpty;
    }

    [Fact]
    public void MatchesNaiveListIPv4()
    {
        Prop.ForAll(Scenario(4).ToArbitrary(), s => RunScenario(s.Ops, s.Probes)).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void MatchesNaiveListIPv6()
    {
        Prop.ForAll(Scenario(16).ToArbitrary(), s => RunScenario(s.Ops, s.Probes)).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void MatchesNaiveListMixedFamilies()
    {
        var mixed = Gen.ArrayOf(Gen.OneOf(Ops(4), Ops(16))).SelectMany(ops =>
            Gen.ArrayOf(Gen.OneOf(Addresses(4), Addresses(16))).Select(probes => (ops, probes)));
        Prop.ForAll(mixed.ToArbitrary(), s => RunScenario(s.ops, s.probes)).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void MatchesNaiveListOnLargeRandomTables()
    {
        // The kernel's randomized test, scaled down: many overlapping routes, then removal of every
        // peer in turn, comparing lookups after each removal.
        var rng = new Random(20261121);
        var peers = Enumerable.Range(0, 50).Select(i => new Peer($"r{i}")).ToArray();
        var trie = new AllowedIps<Peer>();
        var model = new NaiveAllowedIps();
        foreach (int length in new[] { 4, 16 })
        {
            for (int i = 0; i < 40; i++)
            {
                var ip = new byte[length];
                rng.NextBytes(ip);
                int cidr = rng.Next(1, length * 8 + 1);
                Peer peer = peers[rng.Next(peers.Length)];
                trie.Insert(ip, cidr, peer);
                model.Insert(ip, cidr, peer);
                for (int j = 0; j < 10; j++)
                {
                    var mutated = (byte[])ip.Clone();
                    int keep = rng.Next(length * 8);
                    for (int bit = keep; bit < length * 8; bit++)
                    {
                        if (rng.Next(2) == 0)
                            mutated[bit / 8] ^= (byte)(0x80 >> (bit % 8));
                    }
                    cidr = rng.Next(1, length * 8 + 1);
                    peer = peers[rng.Next(peers.Length)];
                    trie.Insert(mutated, cidr, peer);
                    model.Insert(mutated, cidr, peer);
                }
            }
        }
        Assert.Null(trie.FindInvariantViolation());

        var probes = model.Routes.Select(r => r.Network).ToList();
        for (int i = 0; i < 300; i++)
        {
            var p4 = new byte[4];
            var p6 = new byte[16];
            rng.NextBytes(p4);
            rng.NextBytes(p6);
            probes.Add(p4);
            probes.Add(p6);
        }
        for (int i = 0; i < peers.Length; i++)
        {
            Peer peer = peers[i];
            if (i % 5 == 0)
            {
                foreach (byte[] probe in probes)
                    Assert.Same(model.Lookup(probe), trie.Lookup(probe));
            }
            trie.RemoveByPeer(peer);
            model.RemoveByPeer(peer);
            Assert.Null(trie.FindInvariantViolation());
        }
        Assert.True(trie.IsEmpty);
    }
}
