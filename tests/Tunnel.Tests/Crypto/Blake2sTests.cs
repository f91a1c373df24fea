using System.Text;
using Tunnel.Crypto;
using Xunit;
using Tunnel.Tests.Vectors;

namespace Tunnel.Tests.Crypto;

public class Blake2sTests
{
    [Fact]
    public void Rfc7693AppendixB_abc()
    {
        var digest = new byte[32];
        Blake2s.Hash("abc"u8, digest);
        Assert.Equal("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982", Convert.ToHexStringLower(digest));
    }

    [Fact]
    public void Unkeyed_MatchesPythonHashlib_ForEveryLengthTo260()
    {
        var cases = VectorFile.Load("blake2s.json").GetProperty("unkeyed").EnumerateArray().ToList();
        Assert.Equal(261, cases.Count);
        foreach (var c in cases)
        {
            byte[] input = c.Hex("input");
            var digest = new byte[32];
            Blake2s.Hash(input, digest);
            Assert.Equal(c.GetProperty("digest").GetString(), Convert.ToHexStringLower(digest));
        }
    }

    [Fact]
    public void Keyed128And256_MatchPythonHashlib()
    {
        var cases = VectorFile.Load("blake2s.json").GetProperty("keyed").EnumerateArray().ToList();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            var digest = new byte[c.GetProperty("outlen").GetInt32()];
            Blake2s.Mac(c.Hex("key"), c.Hex("input"), digest);
            Assert.Equal(c.GetProperty("digest").GetString(), Convert.ToHexStringLower(digest));
        }
    }

    [Fact]
    public void Incremental_EqualsOneShot_ForEverySplitPoint()
    {
        var cases = VectorFile.Load("blake2s.json").GetProperty("keyed").EnumerateArray()
            .Where(c => c.GetProperty("input").GetString()!.Length / 2 >= 129).ToList();
        foreach (var c in cases)
        {
            byte[] key = c.Hex("key"), input = c.Hex("input");
            int outlen = c.GetProperty("outlen").GetInt32();
            foreach (int split in new[] { 0, 1, 63, 64, 65, 128, input.Length })
            {
                var s = Blake2s.InitKeyed(key, outlen);
                s.Update(input.AsSpan(0, split));
                s.Update(input.AsSpan(split));
                var digest = new byte[outlen];
                s.Final(digest);
                Assert.Equal(c.GetProperty("digest").GetString(), Convert.ToHexStringLower(digest));
            }
        }
    }

    [Fact]
    public void ByteAtATime_EqualsOneShot()
    {
        byte[] input = Enumerable.Range(0, 200).Select(i => (byte)i).ToArray();
        var expected = new byte[32];
        Blake2s.Hash(input, expected);
        var s = Blake2s.Init();
        foreach (byte b in input)
            s.Update([b]);
        var actual = new byte[32];
        s.Final(actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void HmacBlake2s_MatchesPythonHmac()
    {
        var cases = VectorFile.Load("blake2s.json").GetProperty("hmac").EnumerateArray().ToList();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            var mac = new byte[32];
            HmacBlake2s.Compute(c.Hex("key"), c.Hex("input"), mac);
            Assert.Equal(c.GetProperty("mac").GetString(), Convert.ToHexStringLower(mac));
        }
    }

    [Fact]
    public void HmacBlake2s_a_copy_of_one_Init_computes_each_mac_under_that_key()
    {
        // The KDF computes every output from a copy of one Init (the pads compressed once).
        foreach (var c in VectorFile.Load("blake2s.json").GetProperty("hmac").EnumerateArray())
        {
            byte[] input = c.Hex("input");
            if (input.Length == 0)
                continue; // Init is for non-empty messages; Compute takes the empty one
            HmacBlake2s underKey = HmacBlake2s.Init(c.Hex("key"));
            for (int round = 0; round < 2; round++)
            {
                HmacBlake2s mac = underKey;
                mac.Update(input);
                var tag = new byte[32];
                mac.Final(tag);
                Assert.Equal(c.GetProperty("mac").GetString(), Convert.ToHexStringLower(tag));
            }
            underKey.Clear();
        }
    }

    [Fact]
    public void A_hash_started_with_a_compressed_block_refuses_to_end_without_more_input()
    {
        byte[] block = Enumerable.Range(0, Blake2s.BlockSize).Select(i => (byte)i).ToArray();
        var s = Blake2s.InitWithBlock(block);
        var digest = new byte[32];
        Assert.Throws<InvalidOperationException>(() => s.Final(digest));
        var t = Blake2s.InitWithBlock(block);
        t.Update([1, 2, 3]);
        t.Final(digest);
        var expected = new byte[32];
        Blake2s.Hash(block, [1, 2, 3], expected);
        Assert.Equal(expected, digest);
        Assert.Throws<InvalidOperationException>(() =>
        {
            var mac = HmacBlake2s.Init(block);
            mac.Final(digest);
        });
    }

    [Fact]
    public void InvalidArguments_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Blake2s.Init(33));
        Assert.Throws<ArgumentOutOfRangeException>(() => Blake2s.Init(0));
        Assert.Throws<ArgumentException>(() => Blake2s.InitKeyed(new byte[33]));
    }
}
