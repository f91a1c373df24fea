using System.Buffers.Binary;
using System.Text;

namespace ForkNotify;

/// <summary>
/// The unique VM ID handed to <see cref="ForkKernel.AddVmForkRandomness"/> for a fork a host source
/// saw. The vmgenid driver passes its 16-byte ID; the other mechanisms have none, so one is made
/// from what the event carries. The kernel ignores an ID equal to the last one (the driver's
/// <c>memcmp</c> against spurious notifications), so the ID must change exactly when the VM did:
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>a generation counter (VMClock, SysGenID) or VM ID bytes identify the new VM: the same
/// value reported twice is one fork, and is deduplicated;</item>
/// <item>a kmsg record or a uevent carries only its sequence number, and a clone restored from the
/// same snapshot may log the same one, so a nonce from the OS generator is added and every event
/// counts. The nonce must not come from the generator the fork is about to reseed: until the
/// reseed, every clone draws the same bytes from it.</item>
/// </list>
/// Layout: the source name (UTF-8), a zero byte, then each field present as a tag byte and its
/// value: <c>'g'</c> generation (u64 LE), <c>'v'</c> VM ID (u8 length, bytes), <c>'s'</c> sequence
/// (u64 LE), <c>'n'</c> nonce (16 bytes). The kernel mixes it in as HMAC input, so no hashing here.
/// </remarks>
public static class VmForkId
{
    public const int NonceLength = 16;

    /// <summary>The ID for <paramref name="fork"/>; <paramref name="nonces"/> is only used when the
    /// event has neither generation nor VM ID.</summary>
    public static byte[] For(ForkEvent fork, IRandomGenerator nonces)
    {
        ArgumentNullException.ThrowIfNull(fork);
        ArgumentNullException.ThrowIfNull(nonces);
        var id = new List<byte>(64);
        id.AddRange(Encoding.UTF8.GetBytes(fork.Source));
        id.Add(0);
        Span<byte> word = stackalloc byte[sizeof(ulong)];
        if (fork.Generation is ulong generation)
        {
            id.Add((byte)'g');
            BinaryPrimitives.WriteUInt64LittleEndian(word, generation);
            id.AddRange(word);
        }
        if (fork.VmId is { } vmId)
        {
            id.Add((byte)'v');
            id.Add((byte)Math.Min(vmId.Length, byte.MaxValue));
            id.AddRange(vmId.AsSpan(0, Math.Min(vmId.Length, byte.MaxValue)));
        }
        if (fork.Sequence is ulong sequence)
        {
            id.Add((byte)'s');
            BinaryPrimitives.WriteUInt64LittleEndian(word, sequence);
            id.AddRange(word);
        }
        if (fork.Generation is null && fork.VmId is null)
        {
            Span<byte> nonce = stackalloc byte[NonceLength];
            nonces.Fill(nonce);
            id.Add((byte)'n');
            id.AddRange(nonce);
        }
        return [.. id];
    }

    /// <summary>The ID of the generation a pull-counter source reads at start (for
    /// <see cref="ForkKernel.SetBootVmId"/>): equal to the ID of an event reporting the same value.</summary>
    public static byte[] ForGeneration(string source, ulong generation) =>
        For(new ForkEvent(source, generation), NoNonces.Instance);

    private sealed class NoNonces : IRandomGenerator
    {
        public static readonly NoNonces Instance = new();

        public void Fill(Span<byte> destination) =>
            throw new InvalidOperationException("an event with a generation needs no nonce");
    }
}
