using System.Diagnostics;

namespace ForkNotify;

/// <summary>
/// SysGenID-style watchers: components that must react to a VM fork (clear sessions, rekey)
/// register, and acknowledge each generation once they have handled it. An overseer asks how many
/// are outdated and can wait, with a timeout, until none is: the "hold traffic until every session
/// has been cleared" step of a snapshot flow. A waiter that is itself outdated would wait for
/// itself forever, so it gets an error instead (SysGenID's <c>WAIT_WATCHERS</c> returns -EINTR).
/// </summary>
public sealed class GenerationWatchers
{
    // Waiters re-check at least this often, so a generation moved without GenerationChanged()
    // (e.g. by a device counter) is still noticed.
    private static readonly TimeSpan RecheckInterval = TimeSpan.FromMilliseconds(50);

    private readonly object _lock = new();
    private readonly IGenerationCounter _generation;
    private readonly List<GenerationWatcher> _watchers = [];

    public GenerationWatchers(IGenerationCounter generation)
    {
        _generation = generation ?? throw new ArgumentNullException(nameof(generation));
    }

    /// <summary>The generation watchers are measured against.</summary>
    public ulong CurrentGeneration => _generation.Read();

    /// <summary>
    /// Adds a watcher that starts up to date with the current generation (as opening
    /// <c>/dev/sysgenid</c> snapshots the counter). Dispose it to unregister.
    /// </summary>
    public GenerationWatcher Register(string name)
    {
        lock (_lock)
        {
            var watcher = new GenerationWatcher(this, name, _generation.Read());
            _watchers.Add(watcher);
            return watcher;
        }
    }

    /// <summary>Registered watchers (a snapshot).</summary>
    public IReadOnlyList<GenerationWatcher> Watchers
    {
        get { lock (_lock) return _watchers.ToArray(); }
    }

    /// <summary>How many registered watchers have not acknowledged the current generation.</summary>
    public int OutdatedCount
    {
        get
        {
            lock (_lock)
            {
                ulong current = _generation.Read();
                int outdated = 0;
                foreach (GenerationWatcher w in _watchers)
                    if (w.HandledGeneration != current)
                        outdated++;
                return outdated;
            }
        }
    }

    /// <summary>
    /// Blocks until no watcher is outdated (true) or the timeout passes (false).
    /// <see cref="Timeout.InfiniteTimeSpan"/> waits forever.
    /// </summary>
    /// <exception cref="InvalidOperationException"><paramref name="self"/> is outdated: it would wait for itself.</exception>
    public bool WaitForAllUpToDate(TimeSpan timeout, GenerationWatcher? self = null)
    {
        var clock = Stopwatch.StartNew();
        lock (_lock)
        {
            while (true)
            {
                if (self is not null && self.IsOutdated)
                    throw new InvalidOperationException(
                        $"watcher '{self.Name}' is itself outdated (handled {self.HandledGeneration}, current {_generation.Read()}): acknowledge before waiting");
                if (OutdatedCount == 0)
                    return true;
                TimeSpan wait = RecheckInterval;
                if (timeout != Timeout.InfiniteTimeSpan)
                {
                    TimeSpan left = timeout - clock.Elapsed;
                    if (left <= TimeSpan.Zero)
                        return false;
                    if (left < wait)
                        wait = left;
                }
                Monitor.Wait(_lock, wait);
            }
        }
    }

    /// <summary>Wakes waiters after the generation moved (the fork path calls it).</summary>
    public void GenerationChanged()
    {
        lock (_lock)
            Monitor.PulseAll(_lock);
    }

    internal bool Acknowledge(GenerationWatcher watcher, ulong generation)
    {
        lock (_lock)
        {
            // A watcher cannot have handled a generation that does not exist yet, nor go backwards.
            if (generation > _generation.Read() || generation < watcher.HandledGeneration)
                return false;
            watcher.SetHandled(generation);
            Monitor.PulseAll(_lock);
            return true;
        }
    }

    internal ulong WaitForChange(GenerationWatcher watcher, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        lock (_lock)
        {
            while (true)
            {
                ulong current = _generation.Read();
                if (current != watcher.HandledGeneration)
                    return current;
                TimeSpan wait = RecheckInterval;
                if (timeout != Timeout.InfiniteTimeSpan)
                {
                    TimeSpan left = timeout - clock.Elapsed;
                    if (left <= TimeSpan.Zero)
                        return current;
                    if (left < wait)
                        wait = left;
                }
                Monitor.Wait(_lock, wait);
            }
        }
    }

    internal void Remove(GenerationWatcher watcher)
    {
        lock (_lock)
        {
            if (_watchers.Remove(watcher))
                Monitor.PulseAll(_lock);
        }
    }
}
