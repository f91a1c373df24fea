using Tunnel.Crypto;
using Xunit;

namespace Tunnel.Tests.Crypto;

/// <summary>The per-call primitives must not allocate (they run per packet or per handshake).</summary>
public class AllocationTests
{
    [Fact]
    public void HashMacKdfAndAead_DoNotAllocate()
    {
        byte[] data = new byte[1400], key = new byte[32], out32 = new byte[32], out16 = new byte[16];
        byte[] t2 = new byte[32], t3 = new byte[32], nonce = new byte[12], box = new byte[1416];
        void Work()
        {
            Blake2s.Hash(data, out32);
            Blake2s.Mac(key, data, out16);
            HmacBlake2s.Compute(key, data, out32);
            Kdf.Kdf3(out32, t2, t3, key, data);
            Sodium.ChaCha20Poly1305Encrypt(box, data, default, nonce, key);
            Sodium.ChaCha20Poly1305Decrypt(data, box, default, nonce, key);
        }
        Assert.Equal(0, AllocationProbe.LeastBytesPerRound(() =>
        {
            for (int i = 0; i < 100; i++)
                Work();
        }));
    }
}
