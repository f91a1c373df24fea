using System.Text;
using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class ChaCha20Tests
{
    private static readonly Dictionary<string, string> V = Vectors.Load("rfc8439-chacha20.txt");

    [Fact]
    public void Rfc8439_2_3_2_block()
    {
        var output = new byte[64];
        ChaCha20.Keystream(Convert.FromHexString(V["block.key"]), uint.Parse(V["block.counter"]),
            Convert.FromHexString(V["block.nonce"]), output);
        Assert.Equal(V["block.output"], Convert.ToHexStringLower(output));
    }

    [Fact]
    public void Rfc8439_2_4_2_keystream()
    {
        byte[] plaintext = Encoding.ASCII.GetBytes(V["encrypt.plaintext"]);
        byte[] ciphertext = Convert.FromHexString(V["encrypt.ciphertext"]);
        var keystream = new byte[128];
        ChaCha20.Keystream(Convert.FromHexString(V["encrypt.key"]), uint.Parse(V["encrypt.counter"]),
            Convert.FromHexString(V["encrypt.nonce"]), keystream);
        for (int i = 0; i < plaintext.Length; i++)
            Assert.Equal(ciphertext[i], (byte)(plaintext[i] ^ keystream[i]));
    }

    [Fact]
    public void Consecutive_blocks_equal_separate_calls_with_the_next_counter()
    {
        byte[] key = Convert.FromHexString(V["block.key"]);
        byte[] nonce = Convert.FromHexString(V["block.nonce"]);
        var two = new byte[128];
        var second = new byte[64];
        ChaCha20.Keystream(key, 1, nonce, two);
        ChaCha20.Keystream(key, 2, nonce, second);
        Assert.Equal(second, two[64..]);
    }
}
