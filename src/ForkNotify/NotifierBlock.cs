namespace ForkNotify;

/// <summary>A notifier callback, as <c>notifier_fn_t</c>: the block it was registered with, the action, the data.</summary>
public delegate NotifyResult NotifierCall(NotifierBlock block, ulong action, object? data);

/// <summary>
/// <c>struct notifier_block</c>: a callback and its priority (higher runs first). Identity is the
/// object: registering the same block twice is refused, as the kernel refuses it.
/// </summary>
public sealed class NotifierBlock(NotifierCall call, int priority = 0)
{
    public NotifierCall Call { get; } = call ?? throw new ArgumentNullException(nameof(call));

    public int Priority { get; } = priority;

    /// <summary>A name for logs (the kernel prints the callback symbol); defaults to the method's name.</summary>
    public string Name { get; init; } = call?.Method.Name ?? "";

    public override string ToString() => $"{Name} (priority {Priority})";
}
