namespace ForkNotify;

/// <summary>
/// A real host mechanism that tells a guest it was restored or cloned. One small class per
/// mechanism; none throws for a missing device: <see cref="Probe"/> says why it cannot be used.
/// </summary>
public interface IForkSource : IDisposable
{
    string Name { get; }

    /// <summary>Whether the mechanism is usable here, and if not, why.</summary>
    ForkSourceAvailability Probe();

    /// <summary>
    /// Starts watching on a background thread; <paramref name="onFork"/> runs on that thread for each
    /// fork seen. Throws <see cref="InvalidOperationException"/> if the source is not available.
    /// </summary>
    void Start(Action<ForkEvent> onFork);
}
