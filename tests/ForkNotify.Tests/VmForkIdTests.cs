using ForkNotify;
using Xunit;

namespace ForkNotify.Tests;

public sealed class VmForkIdTests
{
    [Fact]
    public void A_generation_names_the_vm_so_a_repeat_is_the_same_id_and_draws_no_nonce()
    {
        var nonces = new FixedEntropy();
        byte[] first = VmForkId.For(new ForkEvent("vmclock (/dev/vmclock0)", 8, Detail: "a"), nonces);
        byte[] again = VmForkId.For(new ForkEvent("vmclock (/dev/vmclock0)", 8, Detail: "b"), nonces);
        byte[] next = VmForkId.For(new ForkEvent("vmclock (/dev/vmclock0)", 9), nonces);

        Assert.Equal(first, again);
        Assert.NotEqual(first, next);
        Assert.Equal(first, VmForkId.ForGeneration("vmclock (/dev/vmclock0)", 8));
        Assert.NotEqual(first, VmForkId.For(new ForkEvent("sysgenid (/dev/sysgenid)", 8), nonces));
        Assert.Equal(0, nonces.Calls);
    }

    [Fact]
    public void The_layout_is_name_zero_then_tagged_fields()
    {
        byte[] id = VmForkId.For(new ForkEvent("s", 0x0102, new byte[] { 0xaa, 0xbb }, Sequence: 3), new FixedEntropy());
        Assert.Equal(new byte[]
        {
            (byte)'s', 0,
            (byte)'g', 0x02, 0x01, 0, 0, 0, 0, 0, 0,
            (byte)'v', 2, 0xaa, 0xbb,
            (byte)'s', 3, 0, 0, 0, 0, 0, 0, 0,
        }, id);
    }

    [Fact]
    public void A_kmsg_record_gets_a_nonce_so_even_the_same_sequence_is_a_new_fork()
    {
        var nonces = new FixedEntropy();
        var line = new ForkEvent("kmsg (/dev/kmsg)", Detail: "seq 344", Sequence: 344);
        byte[] one = VmForkId.For(line, nonces);
        byte[] two = VmForkId.For(line, nonces);

        Assert.NotEqual(one, two);
        Assert.Equal(2, nonces.Calls);
        Assert.Equal(one.Length - VmForkId.NonceLength, Array.LastIndexOf(one, (byte)'n') + 1);

        // And the kernel runs its fork path for each, where a repeated generation is deduplicated.
        var kernel = new ForkKernel(new byte[32], entropy: new FixedEntropy(3));
        Assert.True(kernel.AddVmForkRandomness(one));
        Assert.True(kernel.AddVmForkRandomness(two));
        Assert.True(kernel.AddVmForkRandomness(VmForkId.ForGeneration("vmclock (x)", 5)));
        Assert.False(kernel.AddVmForkRandomness(VmForkId.ForGeneration("vmclock (x)", 5)));
        Assert.Equal(3UL, kernel.Generation.Current);
    }
}
