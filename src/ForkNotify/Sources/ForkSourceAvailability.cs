namespace ForkNotify;

/// <summary>Whether a fork source can be used here; when not, the reason (never an exception).</summary>
public readonly record struct ForkSourceAvailability(bool IsAvailable, string? Reason)
{
    public static ForkSourceAvailability Available { get; } = new(true, null);

    public static ForkSourceAvailability NotAvailable(string reason) => new(false, reason);

    /// <summary>What <see cref="IForkSource.Start"/> does with a source that cannot be used.</summary>
    internal void ThrowIfUnavailable(string sourceName)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"{sourceName}: {this}");
    }

    public override string ToString() => IsAvailable ? "available" : $"not available: {Reason}";
}
