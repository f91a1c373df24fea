namespace ForkNotify;

/// <summary>
/// An input that differs between clones of one VM snapshot, read on the fork path after the pull
/// counter (so a snapshot between the two cannot hand every clone the same bytes). The daemon's
/// is <see cref="HwRngInput"/>.
/// </summary>
public interface ICloneUniqueInput
{
    /// <summary>What it is, for logs and the UAPI.</summary>
    string Name { get; }

    /// <summary>Fills <paramref name="digest"/> (32 bytes) from the input; false if it gave nothing.</summary>
    bool TryRead(Span<byte> digest);
}
