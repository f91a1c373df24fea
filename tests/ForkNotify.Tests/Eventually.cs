namespace ForkNotify.Tests;

internal static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until true or a generous deadline (a liveness bound, not a speed check).</summary>
    public static bool True(Func<bool> condition, int seconds = 15)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (condition()) return true;
            Thread.Sleep(10);
        }
        return condition();
    }
}
