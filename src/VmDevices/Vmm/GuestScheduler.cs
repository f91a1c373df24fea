namespace VmDevices;

/// <summary>
/// A guest's view of the host scheduler: same clock, but its events are dropped once the guest is
/// destroyed, so a dead clone's timers and interrupts cannot touch anything.
/// </summary>
internal sealed class GuestScheduler(IScheduler host, Func<bool> isRunning) : IScheduler
{
    public TimeSpan Now => host.Now;

    public object Gate => host.Gate;

    public ScheduledEvent Schedule(TimeSpan delay, Action action) =>
        host.Schedule(delay, () =>
        {
            if (isRunning())
                action();
        });
}
