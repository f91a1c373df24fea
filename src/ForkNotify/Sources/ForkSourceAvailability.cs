namespace ForkNotify;

/// <summary>Whether a fork source can be used here; when not, the reason (never an exception).</summary>
public readonly record struct ForkSourceAvailability(bool IsAvailable, string? Reason)
{
    public static ForkSourceAvailability Available { get; } = new(true, null);

    public static ForkSourceAvailability NotAvailable(string reason) => new(false, reason);

    public override string ToString() => IsAvailable ? "available" : $"not available: {Reason}";
}
