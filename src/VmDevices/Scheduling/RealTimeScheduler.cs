using System.Diagnostics;

namespace VmDevices;

/// <summary>
/// Wall-clock scheduling for demos: one background thread runs due events in time order, each under
/// <see cref="Gate"/>. An exception from an event is reported through <see cref="EventFailed"/> and
/// the loop goes on: a faulty guest component must not take the VMM down.
/// </summary>
public sealed class RealTimeScheduler : IScheduler, IDisposable
{
    private readonly PriorityQueue<ScheduledEvent, (long Ticks, long Sequence)> _queue = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Thread _thread;
    private long _sequence;
    private bool _stopping;

    public RealTimeScheduler()
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "vmm-scheduler" };
        _thread.Start();
    }

    public TimeSpan Now => _clock.Elapsed;

    public object Gate { get; } = new();

    public event Action<Exception>? EventFailed;

    public ScheduledEvent Schedule(TimeSpan delay, Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        var ev = new ScheduledEvent(Deadline.After(Now, delay), action);
        lock (_queue)
        {
            _queue.Enqueue(ev, (ev.Due.Ticks, _sequence++));
            Monitor.Pulse(_queue);
        }
        return ev;
    }

    public void Dispose()
    {
        lock (_queue)
        {
            _stopping = true;
            Monitor.Pulse(_queue);
        }
        if (Thread.CurrentThread != _thread)
            _thread.Join();
    }

    private void Loop()
    {
        while (true)
        {
            ScheduledEvent ev;
            lock (_queue)
            {
                while (true)
                {
                    if (_stopping)
                        return;
                    if (_queue.TryPeek(out var next, out _))
                    {
                        ev = next;
                        TimeSpan wait = ev.Due - Now;
                        if (wait <= TimeSpan.Zero)
                        {
                            _queue.Dequeue();
                            break;
                        }
                        Monitor.Wait(_queue, wait);
                    }
                    else
                    {
                        Monitor.Wait(_queue);
                    }
                }
            }
            if (ev.IsCancelled)
                continue;
            try
            {
                lock (Gate)
                    ev.Action();
            }
            catch (Exception e)
            {
                EventFailed?.Invoke(e);
            }
        }
    }
}
