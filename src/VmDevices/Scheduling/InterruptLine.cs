namespace VmDevices;

/// <summary>
/// One interrupt (or ACPI Notify) path from a device to the guest. The device raises it at once
/// (the line is latched, e.g. before vCPUs resume) and the guest's handler runs
/// <c>latency</c> later: that gap is the race a push notification always has. Pending (raised,
/// not yet handled) values are guest-visible state, so a snapshot captures them.
/// </summary>
public sealed class InterruptLine(string name, IScheduler scheduler)
{
    private readonly Queue<uint> _pending = new();
    private Action<uint>? _handler;

    public string Name { get; } = name;

    /// <summary>Raised values whose handler has not run yet.</summary>
    public int PendingCount => _pending.Count;

    /// <summary>Deliveries that found no handler installed (the guest had not registered one).</summary>
    public int LostCount { get; private set; }

    /// <summary>Guest side: request_irq() / acpi_install_notify_handler().</summary>
    public void Connect(Action<uint> handler) => _handler = handler;

    public void Disconnect() => _handler = null;

    /// <summary>Device side: latch <paramref name="value"/> now, run the guest handler after
    /// <paramref name="latency"/>.</summary>
    public void Raise(uint value, TimeSpan latency)
    {
        _pending.Enqueue(value);
        scheduler.Schedule(latency, Deliver);
    }

    internal uint[] CapturePending() => _pending.ToArray();

    /// <summary>Re-latches the values pending at snapshot time; they are delivered when the guest
    /// runs again, after <paramref name="latency"/>.</summary>
    internal void RestorePending(ReadOnlySpan<uint> values, TimeSpan latency)
    {
        _pending.Clear();
        foreach (uint v in values)
            Raise(v, latency);
    }

    private void Deliver()
    {
        if (!_pending.TryDequeue(out uint value))
            return;
        if (_handler is { } handler)
            handler(value);
        else
            LostCount++;
    }
}
