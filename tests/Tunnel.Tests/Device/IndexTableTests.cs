using System.Buffers.Binary;
using System.Collections.Concurrent;
using ForkNotify;
using Tunnel.Device;
using Xunit;

namespace Tunnel.Tests.Device;

public sealed class IndexTableTests
{
    private sealed class Entry(string name)
    {
        public override string ToString() => name;
    }

    /// <summary>Returns the given 32-bit values (little-endian), in order, then repeats the last.</summary>
    private sealed class ScriptedRandom(params uint[] values) : IRandomGenerator
    {
        private int _next;
        public int Draws => _next;

        public void Fill(Span<byte> destination)
        {
            Assert.Equal(4, destination.Length);
            uint value = values[Math.Min(_next, values.Length - 1)];
            _next++;
            BinaryPrimitives.WriteUInt32LittleEndian(destination, value);
        }
    }

    /// <summary>A seeded generator, for reproducible stress tests. Not thread-safe on purpose.</summary>
    private sealed class SeededRandom(int seed) : IRandomGenerator
    {
        private readonly Random _random = new(seed);
        private int _inUse;

        public void Fill(Span<byte> destination)
        {
            // The table promises to serialize draws: catch it if it does not.
            Assert.Equal(0, Interlocked.Exchange(ref _inUse, 1));
            _random.NextBytes(destination);
            Volatile.Write(ref _inUse, 0);
        }
    }

    [Fact]
    public void IndexesComeFromTheGeneratorAndSkipZeroAndUsedValues()
    {
        var random = new ScriptedRandom(0x11111111, 0x11111111, 0, 0x22222222);
        var table = new IndexTable<Entry>(random);
        Entry a = new("a"), b = new("b");

        Assert.Equal(0x11111111u, table.Insert(a));
        Assert.Equal(0x22222222u, table.Insert(b)); // 0x11111111 is taken, 0 is reserved
        Assert.Equal(4, random.Draws);
        Assert.Same(a, table.Lookup(0x11111111));
        Assert.Same(b, table.Lookup(0x22222222));
        Assert.Null(table.Lookup(0));
        Assert.Null(table.Lookup(0x33333333));
        Assert.Equal(2, table.Count);
    }

    [Fact]
    public void SameGeneratorStateGivesSameIndexes()
    {
        // A fork simulation copies the generator: two tables fed identical generators agree, which
        // is why ForkSafeRandom must be reseeded on fork.
        var t1 = new IndexTable<Entry>(new SeededRandom(5));
        var t2 = new IndexTable<Entry>(new SeededRandom(5));
        for (int i = 0; i < 100; i++)
            Assert.Equal(t1.Insert(new Entry("x")), t2.Insert(new Entry("y")));
    }

    [Fact]
    public void ABrokenGeneratorFailsLoudly()
    {
        var table = new IndexTable<Entry>(new ScriptedRandom(7));
        table.Insert(new Entry("first"));
        var error = Assert.Throws<InvalidOperationException>(() => table.Insert(new Entry("second")));
        Assert.Contains("random generator", error.Message);
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void ReplaceHandsTheIndexOverOnlyFromItsHolder()
    {
        var table = new IndexTable<Entry>(new ScriptedRandom(100, 200));
        Entry handshake = new("handshake"), keypair = new("keypair"), other = new("other");
        uint index = table.Insert(handshake);
        uint otherIndex = table.Insert(other);

        Assert.False(table.Replace(index, other, keypair));         // other does not hold it
        Assert.False(table.Replace(12345, handshake, keypair));     // no such index
        Assert.Same(handshake, table.Lookup(index));

        Assert.True(table.Replace(index, handshake, keypair));
        Assert.Same(keypair, table.Lookup(index));
        Assert.False(table.Replace(index, handshake, other));       // handshake no longer holds it
        Assert.Same(other, table.Lookup(otherIndex));
        Assert.Equal(2, table.Count);
    }

    [Fact]
    public void RemoveFreesOnlyForItsHolder()
    {
        var table = new IndexTable<Entry>(new ScriptedRandom(100, 200));
        Entry a = new("a"), b = new("b");
        uint ia = table.Insert(a);

        Assert.False(table.Remove(ia, b));
        Assert.False(table.Remove(999, a));
        Assert.Same(a, table.Lookup(ia));

        Assert.True(table.Remove(ia, a));
        Assert.Null(table.Lookup(ia));
        Assert.False(table.Remove(ia, a));
        Assert.Equal(0, table.Count);

        // The freed index can be drawn again.
        var again = new IndexTable<Entry>(new ScriptedRandom(100, 100));
        uint first = again.Insert(a);
        again.Remove(first, a);
        Assert.Equal(first, again.Insert(b));
    }

    [Fact]
    public void LookupDoesNotAllocate()
    {
        var table = new IndexTable<Entry>(OsRandomGenerator.Instance);
        var indexes = Enumerable.Range(0, 1000).Select(i => table.Insert(new Entry(i.ToString()))).ToArray();
        table.Lookup(indexes[0]);
        table.Lookup(1);

        int found = 0;
        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 100_000; i++)
            {
                if (table.Lookup(indexes[i % indexes.Length]) is not null) found++;
                table.Lookup((uint)i * 2654435761u);
            }
        }));
        Assert.Equal(5 * 100_000, found); // 2 warm-up and 3 measured rounds
    }

    [Fact]
    public void ConcurrentInsertLookupReplaceRemoveKeepIndexesUniqueAndOwned()
    {
        const int threads = 4;
        const int rounds = 20_000;
        var table = new IndexTable<Entry>(new SeededRandom(42));
        var failures = new ConcurrentQueue<string>();
        using var start = new Barrier(threads);

        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            var mine = new List<(uint Index, Entry Entry)>();
            for (int i = 0; i < rounds; i++)
            {
                var handshake = new Entry($"h{t}.{i}");
                uint index = table.Insert(handshake);
                // No two live entries may share an index: if another thread's live entry held it,
                // our insert must not have succeeded.
                if (index == 0)
                    failures.Enqueue("index 0 issued");
                if (!ReferenceEquals(table.Lookup(index), handshake))
                    failures.Enqueue($"index {index} not owned by its new entry");

                var keypair = new Entry($"k{t}.{i}");
                if (!table.Replace(index, handshake, keypair))
                    failures.Enqueue($"replace of {index} failed");
                if (!ReferenceEquals(table.Lookup(index), keypair))
                    failures.Enqueue($"index {index} lost after replace");
                mine.Add((index, keypair));

                if (mine.Count > 50)
                {
                    (uint oldIndex, Entry oldEntry) = mine[0];
                    mine.RemoveAt(0);
                    if (!table.Remove(oldIndex, oldEntry))
                        failures.Enqueue($"remove of {oldIndex} failed");
                }
            }
            foreach ((uint index, Entry entry) in mine)
            {
                if (!ReferenceEquals(table.Lookup(index), entry))
                    failures.Enqueue($"index {index} taken over by another entry");
            }
        })).ToArray();
        foreach (Thread w in workers) w.Start();
        foreach (Thread w in workers) w.Join();

        Assert.Empty(failures);
        Assert.Equal(threads * 50, table.Count); // each thread keeps its last 50
    }
}
