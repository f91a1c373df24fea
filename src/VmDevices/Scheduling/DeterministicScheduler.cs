namespace VmDevices;

/// <summary>
/// A virtual clock and an event queue ordered by (virtual time, seeded random tie-break, insertion
/// order). Nothing runs unless the caller drives it (<see cref="RunUntilIdle"/>, <see cref="RunFor"/>),
/// on the caller's thread, so a scenario is a pure function of its seed and stays cheap (no threads).
/// An exception thrown by an event propagates to the caller: in a test it is the failure to see.
/// </summary>
public sealed class DeterministicScheduler : IScheduler
{
    private readonly PriorityQueue<ScheduledEvent, (long Ticks, ulong Tie, long Sequence)> _queue = new();
    private SplitMix64 _ties;
    private long _sequence;

    public DeterministicScheduler(ulong seed) => _ties = new SplitMix64(seed);

    public TimeSpan Now { get; private set; }

    public object Gate { get; } = new();

    /// <summary>Events scheduled and not yet run (cancelled ones included until their time).</summary>
    public int PendingCount => _queue.Count;

    /// <summary>Events run so far.</summary>
    public long ExecutedCount { get; private set; }

    public ScheduledEvent Schedule(TimeSpan delay, Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var ev = new ScheduledEvent(Deadline.After(Now, delay), action);
        _queue.Enqueue(ev, (ev.Due.Ticks, _ties.Next(), _sequence++));
        return ev;
    }

    /// <summary>Runs the earliest event, advancing the clock to its time. False when none is left.</summary>
    public bool RunOne()
    {
        if (!_queue.TryDequeue(out var ev, out _))
            return false;
        Now = ev.Due;
        if (!ev.IsCancelled)
        {
            ExecutedCount++;
            lock (Gate)
                ev.Action();
        }
        return true;
    }

    /// <summary>Runs events until none is left; throws if more than <paramref name="maxEvents"/> run
    /// (a scenario that never settles is a bug worth seeing).</summary>
    public int RunUntilIdle(int maxEvents = 1_000_000)
    {
        int n = 0;
        while (RunOne())
        {
            if (++n > maxEvents)
                throw new InvalidOperationException($"scheduler did not go idle within {maxEvents} events");
        }
        return n;
    }

    /// <summary>Runs every event due up to <paramref name="time"/>, then sets the clock to it.</summary>
    public void RunUntil(TimeSpan time)
    {
        while (_queue.TryPeek(out var ev, out _) && ev.Due <= time)
            RunOne();
        if (time > Now)
            Now = time;
    }

    public void RunFor(TimeSpan duration) => RunUntil(Now + duration);
}
