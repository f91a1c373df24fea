namespace VmDevices;

/// <summary>
/// What happened, when, in which guest: one line per event. Two runs of a deterministic scenario
/// with the same seed must produce the same trace; that is how replayability is tested. Entries
/// never contain secrets (IDs are public by design, random bytes and keys are never recorded).
/// </summary>
public sealed class SimulationTrace(IScheduler clock)
{
    private readonly List<string> _entries = new();

    /// <summary>When false nothing is recorded (a 1,000-scenario run need not keep every line).</summary>
    public bool Enabled { get; set; } = true;

    public IReadOnlyList<string> Entries
    {
        get
        {
            lock (_entries)
                return _entries.ToArray();
        }
    }

    public void Record(string source, string what)
    {
        if (!Enabled)
            return;
        string line = $"{clock.Now.Ticks,12} {source}: {what}";
        lock (_entries)
            _entries.Add(line);
    }
}
