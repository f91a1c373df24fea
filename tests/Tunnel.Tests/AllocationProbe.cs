namespace Tunnel.Tests;

/// <summary>
/// Counts the bytes the calling thread allocates while a round of work runs. The runtime makes
/// one-time allocations on the calling thread the first times a method runs (tier-0 compiles,
/// on-stack replacement of long loops, call counting), so a round is run until warm and the least of
/// a few measured rounds is returned: a real per-call allocation shows in every round, a one-time
/// runtime allocation in at most one.
/// </summary>
internal static class AllocationProbe
{
    public static long LeastBytesPerRound(Action round, int warmRounds = 2, int measuredRounds = 3)
    {
        for (int i = 0; i < warmRounds; i++)
            round();
        long least = long.MaxValue;
        for (int i = 0; i < measuredRounds; i++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return least;
    }
}
