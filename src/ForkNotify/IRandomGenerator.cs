using System.Runtime.InteropServices;

namespace ForkNotify;

/// <summary>
/// Where every consumer of randomness (ephemeral keys, session indexes, cookie secrets) draws it
/// from. One interface so a test can make a handshake deterministic and a VM-fork simulation can
/// copy the generator with the guest and reseed it on fork (see <c>ForkSafeRandom</c>).
/// </summary>
public interface IRandomGenerator
{
    /// <summary>Fills <paramref name="destination"/> with random bytes.</summary>
    void Fill(Span<byte> destination);
}

/// <summary>
/// The kernel's CSPRNG through the getrandom(2) system call on Linux. Not .NET's
/// <c>RandomNumberGenerator</c>: on Linux that is OpenSSL's RAND_bytes, a DRBG in this process's
/// memory that reseeds on a PID change or after a while, so a VM snapshot copies it and two clones
/// draw the same bytes until then. The kernel's generator is reseeded by the kernel itself on a VM
/// fork (the vmgenid driver, Linux 5.18+), sooner than any user-space source can tell us.
/// Elsewhere it falls back to <c>RandomNumberGenerator</c>.
/// </summary>
public sealed unsafe partial class OsRandomGenerator : IRandomGenerator
{
    public static readonly OsRandomGenerator Instance = new();

    private const int EINTR = 4;

    private OsRandomGenerator() { }

    public void Fill(Span<byte> destination)
    {
        if (!OperatingSystem.IsLinux())
        {
            System.Security.Cryptography.RandomNumberGenerator.Fill(destination);
            return;
        }
        fixed (byte* start = destination)
        {
            int filled = 0;
            while (filled < destination.Length)
            {
                nint n = GetRandom(start + filled, (nuint)(destination.Length - filled), 0);
                if (n > 0)
                    filled += (int)n;
                else if (n < 0 && Marshal.GetLastPInvokeError() != EINTR)
                    throw new IOException($"getrandom: errno {Marshal.GetLastPInvokeError()}");
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "getrandom", SetLastError = true)]
    private static partial nint GetRandom(byte* buffer, nuint length, uint flags);
}
