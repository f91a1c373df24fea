namespace ForkNotify;

/// <summary>
/// One registered watcher (one open <c>/dev/sysgenid</c> with watcher tracking on, in SysGenID
/// terms). Dispose to unregister.
/// </summary>
public sealed class GenerationWatcher : IDisposable
{
    private readonly GenerationWatchers _owner;
    private long _handled;
    private int _disposed;

    internal GenerationWatcher(GenerationWatchers owner, string name, ulong handled)
    {
        _owner = owner;
        Name = name;
        _handled = (long)handled;
    }

    public string Name { get; }

    /// <summary>The last generation this watcher acknowledged.</summary>
    public ulong HandledGeneration => (ulong)Volatile.Read(ref _handled);

    /// <summary>True while the current generation is not the one this watcher handled.</summary>
    public bool IsOutdated => HandledGeneration != _owner.CurrentGeneration;

    /// <summary>
    /// Records that this watcher has handled <paramref name="generation"/>. Refused (false) for a
    /// generation newer than the current one or older than one already acknowledged.
    /// </summary>
    public bool Acknowledge(ulong generation) => _owner.Acknowledge(this, generation);

    /// <summary>
    /// Blocks until the generation differs from the handled one (SysGenID's blocking read) or the
    /// timeout passes; returns the current generation either way.
    /// </summary>
    public ulong WaitForChange(TimeSpan timeout) => _owner.WaitForChange(this, timeout);

    internal void SetHandled(ulong generation) => Volatile.Write(ref _handled, (long)generation);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            _owner.Remove(this);
    }

    public override string ToString() => $"{Name} (handled {HandledGeneration})";
}
