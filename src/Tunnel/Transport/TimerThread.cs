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
                var sleep = wait >= MaxTimerSleep.Ticks * 100 ? MaxTimerSleep : TimeSpan.FromTicks(Math.Max(1, wait / 100));
                if (WaitHandle.WaitAny(handles, sleep) == 0)
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
