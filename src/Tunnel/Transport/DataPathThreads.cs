using Microsoft.Extensions.Logging;

namespace Tunnel.Transport;

/// <summary>
/// The threads that move one interface's packets (wireguard-go's RoutineReadFromTUN,
/// RoutineReceiveIncoming and its timers, as plain threads) and the one stop signal they all
/// watch. A loop that throws is logged and run again, so a data-path thread never dies of one
/// bad packet.
/// </summary>
internal sealed class DataPathThreads(ILogger log) : IDisposable
{
    private readonly ManualResetEventSlim _stop = new();
    private readonly List<Thread> _threads = [];
    private volatile bool _stopping;

    /// <summary>True once <see cref="Stop"/> was called: every loop returns as soon as it sees it.</summary>
    public bool Stopping => _stopping;

    /// <summary>True when any thread was started (so there are totals to report).</summary>
    public bool Started => _threads.Count > 0;

    /// <summary>Sleeps up to <paramref name="timeout"/>; true when woken by <see cref="Stop"/>.</summary>
    public bool Wait(TimeSpan timeout) => _stop.Wait(timeout);

    /// <summary>Signalled by <see cref="Stop"/>, for a loop that waits on something else too.</summary>
    public WaitHandle StopHandle => _stop.WaitHandle;

    /// <inheritdoc cref="Wait(TimeSpan)"/>
    public bool Wait(int milliseconds) => _stop.Wait(milliseconds);

    public void Start(Action loop, string name)
    {
        var thread = new Thread(() => RunLoop(loop, name)) { IsBackground = true, Name = name };
        _threads.Add(thread);
        thread.Start();
    }

    /// <summary>A data-path thread must not die of one bad packet: log and carry on.</summary>
    private void RunLoop(Action loop, string name)
    {
        while (!_stopping)
        {
            try
            {
                loop();
            }
            catch (Exception e)
            {
                if (_stopping)
                    return;
                log.LogError(e, "{Thread} failed; continuing", name);
                _stop.Wait(10); // a persistent fault must not become a busy loop of log lines
            }
        }
    }

    /// <summary>Tells every loop to end; the caller then wakes the blocked reads (closes TUN and UDP).</summary>
    public void Stop()
    {
        _stopping = true;
        _stop.Set();
    }

    /// <summary>Waits for every thread to end.</summary>
    public void Join()
    {
        foreach (var thread in _threads)
            thread.Join();
    }

    public void Dispose() => _stop.Dispose();
}
