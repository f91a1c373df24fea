namespace VmDevices;

/// <summary>
/// The transport half every virtio device shares, shaped like the virtio-mmio register file:
/// feature negotiation, the status byte, queue set-up, QueueNotify and the interrupt status. The
/// device type (<see cref="VirtioRngDevice"/>) only says what a notified queue means. A guest that
/// breaks the rules gets DEVICE_NEEDS_RESET and a config-change interrupt, as the spec prescribes
/// (virtio 1.x 2.1.2), never an exception.
/// </summary>
public abstract class VirtioMmioDevice
{
    /// <summary>Only the first errors are kept: a hostile guest must not grow VMM memory.</summary>
    public const int MaxRecordedErrors = 64;

    private readonly DeviceVirtqueue[] _queues;
    private readonly InterruptLine _irq;
    private readonly List<VirtioDeviceError> _errors = new();
    private ulong _driverFeatures;
    private VirtioInterrupt _interruptStatus;

    protected VirtioMmioDevice(string name, GuestMemory memory, InterruptLine irq, int queueCount,
        ushort queueNumMax, ulong deviceFeatures, SimulationTrace? trace)
    {
        if (!Virtq.IsValidSize(queueNumMax))
            throw new ArgumentOutOfRangeException(nameof(queueNumMax), "queue size must be a power of two");
        Name = name;
        Memory = memory;
        _irq = irq;
        QueueNumMax = queueNumMax;
        DeviceFeatures = deviceFeatures | VirtioFeatures.Version1;
        Trace = trace;
        _queues = new DeviceVirtqueue[queueCount];
        for (int i = 0; i < queueCount; i++)
            _queues[i] = new DeviceVirtqueue(memory, $"{name} queue {i}");
    }

    public string Name { get; }

    public ulong DeviceFeatures { get; }

    /// <summary>Features the driver accepted (valid once FEATURES_OK stuck).</summary>
    public ulong DriverFeatures => _driverFeatures;

    public VirtioStatus Status { get; private set; }

    public ushort QueueNumMax { get; }

    public int QueueCount => _queues.Length;

    /// <summary>Refused guest operations, the first <see cref="MaxRecordedErrors"/>.</summary>
    public IReadOnlyList<VirtioDeviceError> Errors => _errors;

    public event Action<VirtioDeviceError>? Error;

    protected GuestMemory Memory { get; }

    protected SimulationTrace? Trace { get; }

    protected bool IsBroken => (Status & VirtioStatus.DeviceNeedsReset) != 0;

    protected bool IsLive => (Status & VirtioStatus.DriverOk) != 0 && !IsBroken;

    /// <summary>Accepted only while negotiating (before FEATURES_OK).</summary>
    public void WriteDriverFeatures(ulong features)
    {
        if ((Status & VirtioStatus.FeaturesOk) == 0)
            _driverFeatures = features;
    }

    /// <summary>
    /// Writing 0 resets the device. FEATURES_OK sticks only if the driver accepted a subset of the
    /// offered features including VERSION_1; the driver must re-read the status to find out.
    /// </summary>
    public void WriteStatus(VirtioStatus status)
    {
        if (status == VirtioStatus.Reset)
        {
            Reset();
            return;
        }
        if ((status & VirtioStatus.FeaturesOk) != 0 && (Status & VirtioStatus.FeaturesOk) == 0)
        {
            bool acceptable = (_driverFeatures & ~DeviceFeatures) == 0
                              && (_driverFeatures & VirtioFeatures.Version1) != 0;
            if (!acceptable)
                status &= ~VirtioStatus.FeaturesOk;
        }
        Status = (status & ~VirtioStatus.DeviceNeedsReset) | (Status & VirtioStatus.DeviceNeedsReset);
    }

    /// <summary>QueueSel + QueueNum + QueueDesc/Driver/Device + QueueReady in one call. False (and
    /// nothing changes) when the layout is illegal or outside guest memory.</summary>
    public bool ConfigureQueue(int queue, VirtqAddresses addresses)
    {
        if ((uint)queue >= (uint)_queues.Length || addresses.Size > QueueNumMax || (Status & VirtioStatus.DriverOk) != 0)
            return false;
        return _queues[queue].Configure(addresses);
    }

    /// <summary>The QueueNotify register: the driver kicked <paramref name="queue"/>.</summary>
    public void QueueNotify(int queue)
    {
        if ((uint)queue >= (uint)_queues.Length || !IsLive || !_queues[queue].Ready)
            return;
        OnQueueNotify(queue);
    }

    /// <summary>Reads and acknowledges the interrupt status (InterruptStatus + InterruptACK).</summary>
    public VirtioInterrupt ReadInterruptStatus()
    {
        VirtioInterrupt s = _interruptStatus;
        _interruptStatus = VirtioInterrupt.None;
        return s;
    }

    /// <summary>What a kick on <paramref name="queue"/> means for this device type.</summary>
    protected abstract void OnQueueNotify(int queue);

    protected virtual void OnReset() { }

    internal DeviceVirtqueue Queue(int queue) => _queues[queue];

    protected void RaiseInterrupt(VirtioInterrupt why, TimeSpan latency)
    {
        _interruptStatus |= why;
        _irq.Raise((uint)why, latency);
    }

    /// <summary>
    /// Pops one chain of <paramref name="queue"/>. On a guest error the device goes to
    /// DEVICE_NEEDS_RESET and stops serving until reset (QEMU's virtio_error does the same).
    /// </summary>
    internal bool TryPop(int queue, out ushort head)
    {
        VirtqError e = _queues[queue].TryPop(out bool available, out head, out string detail);
        if (e == VirtqError.None)
            return available;
        Fail(queue, e, detail);
        return false;
    }

    internal bool PushUsed(int queue, ushort head, uint length)
    {
        if (_queues[queue].PushUsed(head, length))
            return true;
        Fail(queue, VirtqError.OutOfGuestMemory, "used ring");
        return false;
    }

    protected void Fail(int queue, VirtqError error, string detail)
    {
        var e = new VirtioDeviceError(Name, queue, error, detail);
        if (_errors.Count < MaxRecordedErrors)
            _errors.Add(e);
        Trace?.Record(Name, $"refused: {e}");
        Status |= VirtioStatus.DeviceNeedsReset;
        RaiseInterrupt(VirtioInterrupt.ConfigChange, TimeSpan.Zero);
        Error?.Invoke(e);
    }

    private void Reset()
    {
        Status = VirtioStatus.Reset;
        _driverFeatures = 0;
        _interruptStatus = VirtioInterrupt.None;
        foreach (var q in _queues)
            q.Reset();
        OnReset();
    }

    /// <summary>The transport state a snapshot migrates.</summary>
    protected VirtioTransportState CaptureTransport() =>
        new(Status, _driverFeatures, _interruptStatus, Array.ConvertAll(_queues, q => q.Capture()));

    protected void RestoreTransport(VirtioTransportState s)
    {
        Status = s.Status;
        _driverFeatures = s.DriverFeatures;
        _interruptStatus = s.InterruptStatus;
        for (int i = 0; i < _queues.Length; i++)
            _queues[i].Restore(i < s.Queues.Length ? s.Queues[i] : default);
    }
}

/// <summary>Snapshot of the transport: status, negotiated features, pending ISR bits, queues.</summary>
public sealed record VirtioTransportState(
    VirtioStatus Status, ulong DriverFeatures, VirtioInterrupt InterruptStatus, DeviceVirtqueueState[] Queues);
