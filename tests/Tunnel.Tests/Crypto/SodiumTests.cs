using Tunnel.Crypto;
using Xunit;
using Tunnel.Tests.Vectors;

namespace Tunnel.Tests.Crypto;

public class SodiumTests
{
    [Fact]
    public void EnsureLoaded_Succeeds() => Sodium.EnsureLoaded();

    [Fact]
    public void ChaCha20Poly1305_Rfc8439Section2_8_2()
    {
        var v = VectorFile.Load("primitives.json").GetProperty("chacha20poly1305");
        byte[] key = v.Hex("key"), nonce = v.Hex("nonce"), aad = v.Hex("aad"), pt = v.Hex("plaintext");
        byte[] expected = [.. v.Hex("ciphertext"), .. v.Hex("tag")];

        var sealedBox = new byte[pt.Length + 16];
        Sodium.ChaCha20Poly1305Encrypt(sealedBox, pt, aad, nonce, key);
        Assert.Equal(expected, sealedBox);

        var opened = new byte[pt.Length];
        Assert.True(Sodium.ChaCha20Poly1305Decrypt(opened, sealedBox, aad, nonce, key));
        Assert.Equal(pt, opened);

        // In place, both ways.
        var buffer = new byte[pt.Length + 16];
        pt.CopyTo(buffer, 0);
        Sodium.ChaCha20Poly1305Encrypt(buffer, buffer.AsSpan(0, pt.Length), aad, nonce, key);
        Assert.Equal(expected, buffer);
        Assert.True(Sodium.ChaCha20Poly1305Decrypt(buffer.AsSpan(0, pt.Length), buffer, aad, nonce, key));
        Assert.Equal(pt, buffer[..pt.Length]);

        // Detached.
        var ct = new byte[pt.Length];
        var tag = new byte[16];
        Sodium.ChaCha20Poly1305EncryptDetached(ct, tag, pt, aad, nonce, key);
        Assert.Equal(v.Hex("ciphertext"), ct);
        Assert.Equal(v.Hex("tag"), tag);
        Assert.True(Sodium.ChaCha20Poly1305DecryptDetached(ct, ct, tag, aad, nonce, key));
        Assert.Equal(pt, ct);
    }

    [Fact]
    public void ChaCha20Poly1305_RefusesTamperingAndShortInput()
    {
        var v = VectorFile.Load("primitives.json").GetProperty("chacha20poly1305");
        byte[] key = v.Hex("key"), nonce = v.Hex("nonce"), aad = v.Hex("aad");
        byte[] box = [.. v.Hex("ciphertext"), .. v.Hex("tag")];
        var output = new byte[box.Length - 16];
        for (int i = 0; i < box.Length; i += 7)
        {
            box[i] ^= 0x01;
            Assert.False(Sodium.ChaCha20Poly1305Decrypt(output, box, aad, nonce, key));
            box[i] ^= 0x01;
        }
        aad[0] ^= 1;
        Assert.False(Sodium.ChaCha20Poly1305Decrypt(output, box, aad, nonce, key));
        Assert.False(Sodium.ChaCha20Poly1305Decrypt(Span<byte>.Empty, box.AsSpan(0, 15), default, nonce, key));
        Assert.False(Sodium.ChaCha20Poly1305DecryptDetached(output, box.AsSpan(0, output.Length), new byte[16], v.Hex("aad"), nonce, key));
    }

    [Fact]
    public void XChaCha20Poly1305_DraftAppendixA3_1()
    {
        var v = VectorFile.Load("primitives.json").GetProperty("xchacha20poly1305");
        byte[] key = v.Hex("key"), nonce = v.Hex("nonce"), aad = v.Hex("aad"), pt = v.Hex("plaintext");
        byte[] expected = [.. v.Hex("ciphertext"), .. v.Hex("tag")];
        var box = new byte[pt.Length + 16];
        Sodium.XChaCha20Poly1305Encrypt(box, pt, aad, nonce, key);
        Assert.Equal(expected, box);
        var opened = new byte[pt.Length];
        Assert.True(Sodium.XChaCha20Poly1305Decrypt(opened, box, aad, nonce, key));
        Assert.Equal(pt, opened);
        box[^1] ^= 0x80;
        Assert.False(Sodium.XChaCha20Poly1305Decrypt(opened, box, aad, nonce, key));
    }

    [Fact]
    public void X25519_Rfc7748Section5_2()
    {
        foreach (var c in VectorFile.Load("primitives.json").GetProperty("x25519").EnumerateArray())
        {
            var output = new byte[32];
            Assert.True(Sodium.ScalarMult(output, c.Hex("scalar"), c.Hex("u")));
            Assert.Equal(c.Hex("output"), output);
        }
    }

    [Fact]
    public void X25519_Rfc7748Section6_1_DiffieHellman()
    {
        var v = VectorFile.Load("primitives.json").GetProperty("x25519_dh");
        var alicePublic = new byte[32];
        var bobPublic = new byte[32];
        Sodium.ScalarMultBase(alicePublic, v.Hex("alice_private"));
        Sodium.ScalarMultBase(bobPublic, v.Hex("bob_private"));
        Assert.Equal(v.Hex("alice_public"), alicePublic);
        Assert.Equal(v.Hex("bob_public"), bobPublic);

        using var alice = PrivateKey.Import(v.Hex("alice_private"));
        using var bob = PrivateKey.Import(v.Hex("bob_private"));
        Assert.Equal(v.Hex("alice_public"), alice.PublicKey.Bytes.ToArray());
        var k1 = new byte[32];
        var k2 = new byte[32];
        Assert.True(alice.TryAgree(bob.PublicKey, k1));
        Assert.True(bob.TryAgree(alice.PublicKey, k2));
        Assert.Equal(v.Hex("shared"), k1);
        Assert.Equal(v.Hex("shared"), k2);
    }

    [Fact]
    public void X25519_RefusesLowOrderPoints()
    {
        using var key = PrivateKey.Import(Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        var shared = new byte[32];
        shared.AsSpan().Fill(0xAA);
        // The point 0 and the point 1 (order 1 and 4): X25519 of any scalar gives all zeros.
        Assert.False(key.TryAgree(new PublicKey(new byte[32]), shared));
        Assert.All(shared, b => Assert.Equal(0, b));
        var one = new byte[32];
        one[0] = 1;
        Assert.False(key.TryAgree(new PublicKey(one), shared));
    }

    [Fact]
    public void MemZero_ZeroesAndSecretsNeverPrint()
    {
        var buffer = new byte[] { 1, 2, 3 };
        Sodium.MemZero(buffer);
        Assert.Equal(new byte[3], buffer);

        using var key = PrivateKey.Import(Enumerable.Repeat((byte)0x42, 32).ToArray());
        Assert.DoesNotContain(Convert.ToHexStringLower(key.Secret), key.ToString(), StringComparison.OrdinalIgnoreCase);
        var secret = new SecretBuffer(32);
        secret.Span.Fill(7);
        secret.Dispose();
        Assert.All(secret.Span.ToArray(), b => Assert.Equal(0, b));
    }
}
