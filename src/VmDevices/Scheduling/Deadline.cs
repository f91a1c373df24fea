namespace VmDevices;

internal static class Deadline
{
    /// <summary>now + delay, with a negative delay meaning "now" and an overflow meaning "never
    /// before the end of time" (TimeSpan.MaxValue), instead of an exception.</summary>
    public static TimeSpan After(TimeSpan now, TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
            return now;
        return delay > TimeSpan.MaxValue - now ? TimeSpan.MaxValue : now + delay;
    }
}
