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
    public void InvalidArguments_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Blake2s.Init(33));
        Assert.Throws<ArgumentOutOfRangeException>(() => Blake2s.Init(0));
        Assert.Throws<ArgumentException>(() => Blake2s.InitKeyed(new byte[33]));
    }
}
