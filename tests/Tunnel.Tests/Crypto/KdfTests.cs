using System.Text;
using Tunnel.Crypto;
using Xunit;
using Tunnel.Tests.Vectors;

namespace Tunnel.Tests.Crypto;

public class KdfTests
{
    [Fact]
    public void WireGuardGoVectors_Kdf1Kdf2Kdf3()
    {
        var cases = VectorFile.Load("kdf.json").GetProperty("kdf").EnumerateArray().ToList();
        Assert.Equal(3, cases.Count);
        foreach (var c in cases)
        {
            byte[] key = c.Hex("key"), input = c.Hex("input");
            byte[] t0 = new byte[32], t1 = new byte[32], t2 = new byte[32];

            Kdf.Kdf3(t0, t1, t2, key, input);
            Assert.Equal(c.Hex("t0"), t0);
            Assert.Equal(c.Hex("t1"), t1);
            Assert.Equal(c.Hex("t2"), t2);

            Array.Clear(t0); Array.Clear(t1);
            Kdf.Kdf2(t0, t1, key, input);
            Assert.Equal(c.Hex("t0"), t0);
            Assert.Equal(c.Hex("t1"), t1);

            Array.Clear(t0);
            Kdf.Kdf1(t0, key, input);
            Assert.Equal(c.Hex("t0"), t0);
        }
    }

    [Fact]
    public void OutputMayAliasTheKey()
    {
        var c = VectorFile.Load("kdf.json").GetProperty("kdf")[0];
        byte[] chainingKey = new byte[32];
        byte[] key = c.Hex("key");
        // A 32-byte chaining key updated in place, as the handshake does.
        Kdf.Kdf1(chainingKey, key, c.Hex("input"));
        byte[] expected = new byte[32], second = new byte[32];
        Kdf.Kdf2(expected, second, chainingKey, "x"u8);
        Kdf.Kdf2(chainingKey, second, chainingKey, "x"u8);
        Assert.Equal(expected, chainingKey);
    }

    [Fact]
    public void ConstructionConstants_CiAndHi()
    {
        var v = VectorFile.Load("kdf.json");
        var ci = new byte[32];
        Blake2s.Hash(Encoding.ASCII.GetBytes(v.GetProperty("construction").GetString()!), ci);
        Assert.Equal(v.Hex("initial_chain_key"), ci);
        var hi = new byte[32];
        Blake2s.Hash(ci, Encoding.ASCII.GetBytes(v.GetProperty("identifier").GetString()!), hi);
        Assert.Equal(v.Hex("initial_hash"), hi);
    }
}
