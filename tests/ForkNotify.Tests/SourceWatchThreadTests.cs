using Microsoft.Extensions.Logging;
using Xunit;

namespace ForkNotify.Tests;

public sealed class SourceWatchThreadTests
{
    [Fact]
    public void A_thread_that_does_not_stop_in_time_is_reported_and_keeps_its_wake_pipe()
    {
        var log = new ListLogger();
        var watch = new SourceWatchThread("test source", "test watch", log, joinTimeout: TimeSpan.FromMilliseconds(200));
        using var release = new ManualResetEventSlim();
        var wakeFd = -1;
        watch.Start(wake =>
        {
            Volatile.Write(ref wakeFd, wake.Fd);
            release.Wait(); // a handler that blocks past the join timeout
        });
        Assert.True(Eventually.True(() => Volatile.Read(ref wakeFd) >= 0));

        var e = Assert.Throws<TimeoutException>(() => watch.Dispose());
        Assert.Contains("test source", e.Message);
        Assert.Contains(log.Entries, entry => entry.Level == LogLevel.Error && entry.Message.Contains("did not stop"));
        Assert.Throws<InvalidOperationException>(() => watch.ThrowIfStarted()); // still running, still owned
        // The thread may still poll its wake pipe: it must not have been closed under it.
        Assert.StartsWith("pipe:", new FileInfo($"/proc/self/fd/{wakeFd}").LinkTarget);

        release.Set();
        watch.Dispose(); // now it ends, and the pipe is closed after it
        watch.ThrowIfStarted();
    }

    [Fact]
    public void A_thread_that_stops_is_joined_and_the_watch_can_start_again()
    {
        var watch = new SourceWatchThread("test source", "test watch", new ListLogger());
        watch.Start(wake => { while (!wake.IsSignalled) wake.Wait(-1, 0, 1000); });
        watch.Dispose();
        watch.ThrowIfStarted();
        watch.Start(wake => { while (!wake.IsSignalled) wake.Wait(-1, 0, 1000); });
        watch.Dispose();
    }
}
