using Microsoft.Extensions.Logging;

namespace ForkNotify;

/// <summary>
/// The background thread a fork source watches its device on, and the <see cref="WakePipe"/> that
/// stops it. The source keeps its own device: it opens it before <see cref="Start"/> and closes it
/// only after <see cref="Dispose"/> returned, so the loop never reads a closed (or reused) fd.
/// </summary>
/// <remarks>
/// <see cref="Dispose"/> leaves the thread stopped, not the object dead: a source that is disposed
/// and probed again may start again.
/// </remarks>
internal sealed class SourceWatchThread : IDisposable
{
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(5);

    private readonly string _sourceName;
    private readonly string _threadName;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private WakePipe? _wake;
    private Thread? _thread;

    public SourceWatchThread(string sourceName, string threadName, ILogger logger)
    {
        _sourceName = sourceName;
        _threadName = threadName;
        _logger = logger;
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> if the thread runs: a source starts once.</summary>
    public void ThrowIfStarted()
    {
        lock (_lock)
        {
            if (_thread is not null)
                throw new InvalidOperationException($"{_sourceName}: already started");
        }
    }

    /// <summary>
    /// Runs <paramref name="watch"/> on a new background thread; it must poll the wake pipe it is
    /// given alongside its device and return once that pipe is signalled.
    /// </summary>
    public void Start(Action<WakePipe> watch)
    {
        lock (_lock)
        {
            ThrowIfStarted();
            WakePipe wake = new();
            _wake = wake;
            _thread = new Thread(() => watch(wake)) { IsBackground = true, Name = _threadName };
            _thread.Start();
        }
    }

    /// <summary>
    /// Hands <paramref name="ev"/> to the handler. A handler that throws is logged, never rethrown:
    /// an exception would end the watch thread and with it every later fork.
    /// </summary>
    public void Deliver(Action<ForkEvent> onFork, ForkEvent ev)
    {
        try
        {
            onFork(ev);
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "{Source}: fork handler threw", _sourceName);
        }
    }

    /// <summary>Wakes the thread, waits for it to end (at most 5 s) and closes the wake pipe.</summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_lock)
        {
            thread = _thread;
            _wake?.Signal();
        }
        // Joined outside the lock: a handler that calls back into the source must not block on it.
        thread?.Join(JoinTimeout);
        lock (_lock)
        {
            _wake?.Dispose();
            _wake = null;
            _thread = null;
        }
    }
}
