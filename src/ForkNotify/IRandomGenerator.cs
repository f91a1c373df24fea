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

/// <summary>The operating system's CSPRNG (getrandom(2) through .NET). Not part of guest state.</summary>
public sealed class OsRandomGenerator : IRandomGenerator
{
    public static readonly OsRandomGenerator Instance = new();

    private OsRandomGenerator() { }

    public void Fill(Span<byte> destination) =>
        System.Security.Cryptography.RandomNumberGenerator.Fill(destination);
}
