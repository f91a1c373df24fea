using Tunnel.Device;
using VmDevices;

namespace ForkSim;

/// <summary>
/// A device clock read from the simulation's scheduler: the virtual time of the event being run.
/// Clones read the same host time as their parent would have (CLOCK_BOOTTIME keeps counting while
/// a VM is paused), so the protocol's timers see the real gap across a snapshot.
/// </summary>
internal sealed class SchedulerClock(IScheduler scheduler) : IClock
{
    public long MonotonicNanos => VirtualClock.DefaultStartNanos + scheduler.Now.Ticks * TimeSpan.NanosecondsPerTick;

    public DateTimeOffset UtcNow => VirtualClock.DefaultStartUtc + scheduler.Now;
}
