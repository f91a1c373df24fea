using System.Security.Cryptography;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class ForkSafeRandomTests
{
    private static readonly byte[] Seed = Encoding.ASCII.GetBytes("a fixed seed for tests");

    [Fact]
    public void Output_is_fast_key_erasure_chacha20_from_the_seed()
    {
        var rng = new ForkSafeRandom(new VmGeneration(), Seed);
        byte[] key = Bytes.Sha256(Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom seed"), Seed);
        var nonce = new byte[12];

        for (int batch = 0; batch < 3; batch++)
        {
            var block = new byte[256];
            ChaCha20.Keystream(key, 0, nonce, block);
            Assert.Equal(block[32..], Bytes.Of(rng, ForkSafeRandom.OutputPerBatch));
            key = block[..32]; // the head of each batch is the next key
        }
    }

    [Fact]
    public void Same_seed_same_stream_different_seed_different_stream()
    {
        var a = new ForkSafeRandom(new VmGeneration(), Seed);
        var b = new ForkSafeRandom(new VmGeneration(), Seed);
        var c = new ForkSafeRandom(new VmGeneration(), Encoding.ASCII.GetBytes("another seed"));
        byte[] sa = Bytes.Of(a, 1000);
        Assert.Equal(sa, Bytes.Of(b, 1000));
        Assert.NotEqual(sa, Bytes.Of(c, 1000));
    }

    [Fact]
    public void Stream_does_not_depend_on_how_requests_are_split()
    {
        byte[] whole = Bytes.Of(new ForkSafeRandom(new VmGeneration(), Seed), 2000);
        Prop.ForAll(Gen.ListOf(Gen.Choose(1, 300)).ToArbitrary(), sizes =>
        {
            var rng = new ForkSafeRandom(new VmGeneration(), Seed);
            var collected = new List<byte>();
            foreach (int n in sizes)
            {
                if (collected.Count + n > whole.Length) break;
                collected.AddRange(Bytes.Of(rng, n));
            }
            return collected.SequenceEqual(whole.Take(collected.Count));
        }).QuickCheckThrowOnFailure();
    }

    [Fact]
    public void Used_output_is_erased_from_the_state()
    {
        var rng = new ForkSafeRandom(new VmGeneration(), Seed);
        byte[] first = Bytes.Of(rng, 100);
        ForkSafeRandomState state = rng.Capture();
        Assert.Equal(100, state.Position);
        Assert.All(state.Buffer[..100], b => Assert.Equal(0, b));
        Assert.Contains(state.Buffer[100..], b => b != 0);
        // and the key is no longer the one that produced the output
        byte[] key0 = Bytes.Sha256(Encoding.ASCII.GetBytes("ForkNotify.ForkSafeRandom seed"), Seed);
        Assert.NotEqual(key0, state.Key);
        Assert.NotEqual(first, state.Buffer[..100]);
    }

    [Fact]
    public void Capture_and_restore_give_identical_streams_like_a_vm_snapshot()
    {
        var original = new ForkSafeRandom(new VmGeneration(), Seed);
        Bytes.Of(original, 77); // mid-batch
        ForkSafeRandomState snapshot = original.Capture();
        byte[] expected = Bytes.Of(original, 1000);

        var clone1 = new ForkSafeRandom(new VmGeneration());
        var clone2 = new ForkSafeRandom(new VmGeneration());
        clone1.Restore(snapshot);
        clone2.Restore(snapshot);
        Assert.Equal(expected, Bytes.Of(clone1, 1000));
        Assert.Equal(expected, Bytes.Of(clone2, 1000));
    }

    [Fact]
    public void Restored_copies_diverge_after_fork_randomness_with_different_ids()
    {
        var gen1 = new VmGeneration();
        var gen2 = new VmGeneration();
        var clone1 = new ForkSafeRandom(gen1, Seed, new FixedEntropy());
        var clone2 = new ForkSafeRandom(gen2, Seed, new FixedEntropy());
        // identical host entropy: only the VM ID can separate the two
        clone1.AddVmForkRandomness([1, 2, 3]);
        clone2.AddVmForkRandomness([1, 2, 4]);
        Assert.NotEqual(Bytes.Of(clone1, 64), Bytes.Of(clone2, 64));
    }

    [Fact]
    public void Fork_randomness_with_same_id_and_same_entropy_is_deterministic()
    {
        var clone1 = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy());
        var clone2 = new ForkSafeRandom(new VmGeneration(), Seed, new FixedEntropy());
        clone1.AddVmForkRandomness([9]);
        clone2.AddVmForkRandomness([9]);
        Assert.Equal(Bytes.Of(clone1, 64), Bytes.Of(clone2, 64));
    }

    [Fact]
    public void Fork_randomness_with_os_entropy_separates_even_equal_ids()
    {
        var clone1 = new ForkSafeRandom(new VmGeneration(), Seed);
        var clone2 = new ForkSafeRandom(new VmGeneration(), Seed);
        clone1.AddVmForkRandomness([9]);
        clone2.AddVmForkRandomness([9]);
        Assert.NotEqual(Bytes.Of(clone1, 64), Bytes.Of(clone2, 64));
    }

    [Fact]
    public void Generation_change_reseeds_before_output()
    {
        var gen1 = new VmGeneration();
        var gen2 = new VmGeneration();
        var a = new ForkSafeRandom(gen1, Seed);
        var b = new ForkSafeRandom(gen2, Seed);
        Assert.Equal(Bytes.Of(a, 10), Bytes.Of(b, 10));
        gen1.Advance();
        gen2.Advance();
        Assert.NotEqual(Bytes.Of(a, 64), Bytes.Of(b, 64)); // each took fresh OS entropy
        Assert.Equal(1, a.Reseeds);
        Bytes.Of(a, 64);
        Assert.Equal(1, a.Reseeds); // no change, no reseed
    }

    [Fact]
    public void Unchanged_generation_keeps_the_stream_and_disabled_check_ignores_changes()
    {
        var gen = new VmGeneration();
        var reference = new ForkSafeRandom(new VmGeneration(), Seed);
        var rng = new ForkSafeRandom(gen, Seed) { GenerationCheck = false };
        gen.Advance();
        Assert.Equal(Bytes.Of(reference, 300), Bytes.Of(rng, 300));
        Assert.Equal(0, rng.Reseeds);
    }

    [Fact]
    public void Generation_moving_during_a_fill_discards_that_output_and_reseeds_again()
    {
        var gen = new VmGeneration();
        var entropy = new FixedEntropy();
        var rng = new ForkSafeRandom(gen, Seed, entropy);
        // a "snapshot" lands while the first reseed runs: the generation moves under the Fill
        entropy.OnFill = () => { if (entropy.Calls == 1) gen.Advance(); };
        gen.Advance();
        Bytes.Of(rng, 32);
        Assert.Equal(2, rng.Reseeds);
        Assert.Equal(2UL, rng.Capture().GenerationSeen);
    }

    [Fact]
    public void Restore_brings_back_the_generation_seen()
    {
        var gen = new VmGeneration();
        var rng = new ForkSafeRandom(gen, Seed);
        ForkSafeRandomState s = rng.Capture();
        gen.Advance();
        Bytes.Of(rng, 1);
        Assert.Equal(1UL, rng.Capture().GenerationSeen);
        rng.Restore(s);
        Assert.Equal(0UL, rng.Capture().GenerationSeen);
    }

    [Fact]
    public void Dispose_and_clear_zero_the_key()
    {
        var rng = new ForkSafeRandom(new VmGeneration(), Seed);
        ForkSafeRandomState s = rng.Capture();
        s.Clear();
        Assert.All(s.Key, b => Assert.Equal(0, b));
        rng.Dispose();
        Assert.All(rng.Capture().Key, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Concurrent_fills_never_hand_out_the_same_bytes_twice()
    {
        var rng = new ForkSafeRandom(new VmGeneration(), Seed);
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        Parallel.For(0, 4, _ =>
        {
            for (int i = 0; i < 5000; i++)
                seen.AddOrUpdate(Convert.ToHexString(Bytes.Of(rng, 16)), 1, (k, v) => v + 1);
        });
        Assert.Equal(20000, seen.Count);
    }
}
