using Xunit;

namespace ForkNotify.Tests;

public sealed class OsRandomGeneratorTests
{
    [Fact]
    public void Fills_every_byte_of_large_and_empty_buffers()
    {
        // getrandom(2) may return fewer bytes than asked for large requests: the loop must go on.
        byte[] big = new byte[1 << 20];
        OsRandomGenerator.Instance.Fill(big);
        int zeros = big.Count(b => b == 0);
        // 1 MiB of uniform bytes has ~4096 zeros; an unfilled tail would add thousands more.
        Assert.InRange(zeros, 3000, 5300);
        OsRandomGenerator.Instance.Fill(Span<byte>.Empty);
    }

    [Fact]
    public void Two_draws_differ()
    {
        byte[] a = new byte[32], b = new byte[32];
        OsRandomGenerator.Instance.Fill(a);
        OsRandomGenerator.Instance.Fill(b);
        Assert.NotEqual(a, b);
    }
}
