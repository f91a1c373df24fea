namespace VmDevices;

/// <summary>
/// Time and deferred work for a simulated machine. Devices use it to deliver interrupts after a
/// latency, workloads to run their timers. Two implementations: <see cref="DeterministicScheduler"/>
/// (virtual time, seeded tie-breaking, single-threaded: every scenario replays from its seed) and
/// <see cref="RealTimeScheduler"/> (wall-clock, one event thread, for demos).
/// </summary>
public interface IScheduler
{
    /// <summary>Time since the scheduler started (virtual in deterministic mode).</summary>
    TimeSpan Now { get; }

    /// <summary>
    /// Held while an event runs. Code outside the event loop that touches guest state (snapshot,
    /// restore) takes it too: that is "pausing the vCPUs".
    /// </summary>
    object Gate { get; }

    /// <summary>Runs <paramref name="action"/> once, <paramref name="delay"/> from now.</summary>
    ScheduledEvent Schedule(TimeSpan delay, Action action);
}

/// <summary>A pending event; <see cref="Cancel"/> makes it a no-op when its time comes.</summary>
public sealed class ScheduledEvent
{
    private volatile bool _cancelled;

    internal ScheduledEvent(TimeSpan due, Action action)
    {
        Due = due;
        Action = action;
    }

    public TimeSpan Due { get; }

    public bool IsCancelled => _cancelled;

    internal Action Action { get; }

    public void Cancel() => _cancelled = true;
}
