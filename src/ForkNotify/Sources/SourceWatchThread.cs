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
    private static readonly TimeSpan DefaultJoinTimeout = TimeSpan.FromSeconds(5);

    private readonly TimeSpan _joinTimeout;
    private readonly string _sourceName;
    private readonly string _threadName;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private WakePipe? _wake;
    private Thread? _thread;

    /// <param name="joinTimeout">How long <see cref="Dispose"/> waits for the thread (default 5 s).</param>
    public SourceWatchThread(string sourceName, string threadName, ILogger logger, TimeSpan? joinTimeout = null)
    {
        _joinTimeout = joinTimeout ?? DefaultJoinTimeout;
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

    /// <summary>
    /// Wakes the thread, waits for it to end (at most the join timeout) and closes the wake pipe.
    /// A thread that does not end in time (a handler that blocks) is still running: then this
    /// throws <see cref="TimeoutException"/> and leaves the pipe open and the thread registered,
    /// so the source, which disposes this first, keeps its device open too (a leak, where closing
    /// or unmapping it under the thread would be a use after free). Dispose may be called again.
    /// </summary>
    public void Dispose()
    {
        Thread? thread;
        lock (_lock)
        {
            thread = _thread;
            _wake?.Signal();
        }
        // Joined outside the lock: a handler that calls back into the source must not block on it.
        if (thread is not null && !thread.Join(_joinTimeout))
        {
            _logger.LogError("{Source}: the watch thread did not stop within {Timeout}; its device stays open",
                _sourceName, _joinTimeout);
            throw new TimeoutException($"{_sourceName}: the watch thread did not stop within {_joinTimeout}");
        }
        lock (_lock)
        {
            _wake?.Dispose();
            _wake = null;
            _thread = null;
        }
    }
}
