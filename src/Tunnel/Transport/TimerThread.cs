using Tunnel.Device;

namespace Tunnel.Transport;

/// <summary>
/// The timers thread's loop: calls the engine's timers when they are due, and at least every
/// 100 ms; once a second it has new handshakes logged.
/// </summary>
internal sealed class TimerThread(TunnelDevice device, HandshakeLog handshakes, DataPathThreads threads)
{
    /// <summary>The timer thread wakes at least this often, so a deadline the data path brings
    /// forward (a new handshake, a keepalive) is never missed by more than this.</summary>
    private static readonly TimeSpan MaxTimerSleep = TimeSpan.FromMilliseconds(100);

    /// <summary>How often the timer thread looks for completed handshakes to log.</summary>
    private static readonly long HandshakeLogIntervalNanos = Constants.NanosPerSecond;

    // Set by the device when a deadline came earlier than our sleep (the fork's rekey was queued).
    private readonly AutoResetEvent _wake = new(false);

    public void Run()
    {
        WaitHandle[] handles = [threads.StopHandle, _wake];
        device.TimersBroughtForward = () => _wake.Set();
        try
        {
            Loop(handles);
        }
        finally
        {
            device.TimersBroughtForward = null;
        }
    }

    private void Loop(WaitHandle[] handles)
    {
        var clock = SystemClock.Instance;
        var nextHandshakeLog = clock.MonotonicNanos;
        while (!threads.Stopping)
        {
            var now = clock.MonotonicNanos;
            var wait = device.NextDeadlineNanos - now;
            if (wait > 0)
            {
                // Whole milliseconds, rounded up: a wait handle truncates a shorter timeout to 0 and
                // the loop would spin between the paced rekey's slots; a tick sends every
                // slot that has come, so a millisecond late costs nothing.
                int sleepMs = (int)Math.Min((long)MaxTimerSleep.TotalMilliseconds,
                    (wait + Constants.NanosPerMillisecond - 1) / Constants.NanosPerMillisecond);
                if (WaitHandle.WaitAny(handles, sleepMs) == 0)
                    return;
            }
            device.Tick();
            now = clock.MonotonicNanos;
            if (now >= nextHandshakeLog)
            {
                nextHandshakeLog = now + HandshakeLogIntervalNanos;
                handshakes.LogNew(device);
            }
        }
    }
}
