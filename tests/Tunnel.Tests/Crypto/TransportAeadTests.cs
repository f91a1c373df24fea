using Tunnel.Crypto;
using Xunit;

namespace Tunnel.Tests.Crypto;

/// <summary>
/// The data path's AEAD (OpenSSL when present) must produce exactly libsodium's bytes and refuse
/// what libsodium refuses, with keys changing between calls and with the deferred scrub.
/// </summary>
public sealed class TransportAeadTests
{
    [Fact]
    public void OpenSslIsThereOnLinux()
    {
        // .NET needs libcrypto.so.3 on Linux anyway; if this fails the data path fell back to libsodium.
        if (OperatingSystem.IsLinux())
            Assert.Equal("OpenSSL and libsodium", TransportAead.Implementation);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SealsAndOpensLikeLibsodium(bool deferScrub)
    {
        var result = Task.Factory.StartNew(() =>
        {
            // A thread of its own, so deferring the scrub does not leak into other tests.
            if (deferScrub)
                TransportAead.HoldKeysUntilScrub();
            var random = new Random(42);
            foreach (var length in new[] { 0, 1, 15, 16, 17, 63, 64, 65, TransportAead.OpenSslMinimumLength - 1, TransportAead.OpenSslMinimumLength, 1420, 1440, 9000 })
            {
                for (var round = 0; round < 3; round++)
                {
                    var key = new byte[32];
                    var nonce = new byte[12];
                    var plaintext = new byte[length];
                    random.NextBytes(key);
                    random.NextBytes(nonce);
                    random.NextBytes(plaintext);

                    var expected = new byte[length + 16];
                    Sodium.ChaCha20Poly1305Encrypt(expected, plaintext, default, nonce, key);
                    var sealedBox = new byte[length + 16];
                    TransportAead.Seal(sealedBox, plaintext, nonce, key);
                    Assert.Equal(expected, sealedBox);

                    var opened = new byte[length];
                    Assert.True(TransportAead.Open(opened, sealedBox, nonce, key));
                    Assert.Equal(plaintext, opened);

                    // In place, as the engine does it.
                    var buffer = new byte[length + 16];
                    plaintext.CopyTo(buffer, 0);
                    TransportAead.Seal(buffer, buffer.AsSpan(0, length), nonce, key);
                    Assert.Equal(expected, buffer);

                    // Any flipped bit, a wrong nonce or a wrong key: refused.
                    var forged = (byte[])sealedBox.Clone();
                    forged[random.Next(forged.Length)] ^= (byte)(1 << random.Next(8));
                    Assert.False(TransportAead.Open(opened, forged, nonce, key));
                    var otherNonce = (byte[])nonce.Clone();
                    otherNonce[0] ^= 1;
                    Assert.False(TransportAead.Open(opened, sealedBox, otherNonce, key));
                    var otherKey = (byte[])key.Clone();
                    otherKey[31] ^= 0x80;
                    Assert.False(TransportAead.Open(opened, sealedBox, nonce, otherKey));
                    if (deferScrub && round == 1)
                        TransportAead.ScrubThreadKeys();
                }
            }
            Assert.False(TransportAead.Open(new byte[0], new byte[15], new byte[12], new byte[32]));
            Assert.False(TransportAead.Open(new byte[2], new byte[17], new byte[12], new byte[32]));
            TransportAead.ScrubThreadKeys();
            return true;
        }, TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.True(result.GetAwaiter().GetResult());
    }
}
