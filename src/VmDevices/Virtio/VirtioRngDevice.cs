using ForkNotify;

namespace VmDevices;

/// <summary>
/// virtio-rng (device ID 4) with the proposed entropy-leak feature (VIRTIO_RNG_F_LEAK, bit 0;
/// Tsirkin's virtio-dev proposal, implemented by Chalios for QEMU and Linux, not merged).
/// Queue 0 (requestq) is served at once: every device-writable buffer is filled with host entropy.
/// Queues 1 and 2 are leak queues. Their commands have no header, the buffer layout is the type:
/// only writable buffers = fill-on-leak (fill them with random bytes), readable then writable
/// buffers of equal total size = copy-on-leak (copy the readable bytes into the writable ones;
/// a size mismatch completes with length 0, as QEMU does). Buffers on the active leak queue are
/// held until a leak event (<see cref="SignalEntropyLeak"/>, called by the VMM before the guest
/// resumes); the event completes all of them, swaps the active queue and interrupts. Buffers later
/// added to the queue already signalled are completed at once.
/// </summary>
public sealed class VirtioRngDevice : VirtioMmioDevice
{
    /// <summary>VIRTIO_RNG_F_LEAK.</summary>
    public const ulong FeatureLeak = 1ul << 0;

    public const int RequestQueue = 0;
    public const int LeakQueue1 = 1;
    public const int LeakQueue2 = 2;

    /// <summary>"No leak queue signalled yet".</summary>
    public const int NoQueue = -1;

    private readonly IRandomGenerator _hostEntropy;

    public VirtioRngDevice(GuestMemory memory, InterruptLine irq, IRandomGenerator hostEntropy,
        ushort queueNumMax = 256, bool offerLeak = true, SimulationTrace? trace = null, string name = "virtio-rng")
        : base(name, memory, irq, offerLeak ? 3 : 1, queueNumMax, offerLeak ? FeatureLeak : 0, trace)
    {
        _hostEntropy = hostEntropy;
    }

    public bool LeakNegotiated => (DriverFeatures & FeatureLeak) != 0 && (Status & VirtioStatus.FeaturesOk) != 0;

    /// <summary>The leak queue whose buffers the next leak event completes.</summary>
    public int ActiveLeakQueue { get; private set; } = LeakQueue1;

    /// <summary>The leak queue the last event completed; new buffers there complete at once.</summary>
    public int SignaledLeakQueue { get; private set; } = NoQueue;

    public long LeakEvents { get; private set; }

    /// <summary>Leak events that found no buffer armed on the active queue.</summary>
    public long LeakEventsWithoutRequest { get; private set; }

    public long LeakBuffersCompleted { get; private set; }

    /// <summary>
    /// An entropy leak (a snapshot was taken or loaded): completes every buffer of the active leak
    /// queue now, swaps queues, and raises the used-buffer interrupt after
    /// <paramref name="interruptLatency"/>. The VMM calls this while the guest is paused, so the
    /// guest finds every fill and copy already done when it resumes. Returns the number of buffers
    /// completed, or -1 when the feature is not live.
    /// </summary>
    public int SignalEntropyLeak(TimeSpan interruptLatency)
    {
        if (!LeakNegotiated || !IsLive)
            return -1;
        int queue = ActiveLeakQueue;
        int completed = CompleteAll(queue);
        if (IsBroken)
            return -1; // a bad chain in the leak queue: refused, reported, nothing swapped
        LeakEvents++;
        if (completed == 0)
            LeakEventsWithoutRequest++;
        SignaledLeakQueue = queue;
        ActiveLeakQueue = queue == LeakQueue1 ? LeakQueue2 : LeakQueue1;
        Trace?.Record(Name, $"entropy leak: completed {completed} on leakq.{queue}, active leakq.{ActiveLeakQueue}");
        if (completed > 0)
            RaiseInterrupt(VirtioInterrupt.UsedBuffer, interruptLatency);
        return completed;
    }

    protected override void OnQueueNotify(int queue)
    {
        if (queue == RequestQueue)
        {
            if (CompleteAll(queue) > 0 && !Queue(queue).InterruptsSuppressed)
                RaiseInterrupt(VirtioInterrupt.UsedBuffer, TimeSpan.Zero);
            return;
        }
        if (!LeakNegotiated || queue != SignaledLeakQueue)
            return; // held until the next leak event
        if (CompleteAll(queue) > 0)
            RaiseInterrupt(VirtioInterrupt.UsedBuffer, TimeSpan.Zero);
    }

    protected override void OnReset()
    {
        ActiveLeakQueue = LeakQueue1;
        SignaledLeakQueue = NoQueue;
    }

    public VirtioRngDeviceState Capture() => new(CaptureTransport(), ActiveLeakQueue, SignaledLeakQueue);

    public void Restore(VirtioRngDeviceState s)
    {
        RestoreTransport(s.Transport);
        ActiveLeakQueue = s.ActiveLeakQueue;
        SignaledLeakQueue = s.SignaledLeakQueue;
    }

    private int CompleteAll(int queue)
    {
        int completed = 0;
        while (!IsBroken && TryPop(queue, out ushort head))
        {
            ReadOnlySpan<VirtqBuffer> chain = Queue(queue).Segments;
            uint length = queue == RequestQueue ? Fill(chain) : ExecuteLeakCommand(chain);
            if (!PushUsed(queue, head, length))
                break;
            completed++;
            if (queue != RequestQueue)
                LeakBuffersCompleted++;
        }
        return completed;
    }

    private uint ExecuteLeakCommand(ReadOnlySpan<VirtqBuffer> chain)
    {
        ulong readable = 0, writable = 0;
        foreach (var b in chain)
        {
            if (b.DeviceWritable)
                writable += b.Length;
            else
                readable += b.Length;
        }
        if (readable == 0)
            return Fill(chain);
        return readable == writable ? Copy(chain, readable) : 0u;
    }

    /// <summary>Fills every writable buffer of the chain; returns the bytes written.</summary>
    private uint Fill(ReadOnlySpan<VirtqBuffer> chain)
    {
        ulong written = 0;
        foreach (var b in chain)
        {
            if (!b.DeviceWritable)
                continue;
            // The chain was validated against guest memory when it was popped.
            _hostEntropy.Fill(Memory.Map(b.Address, (int)b.Length));
            written += b.Length;
        }
        return (uint)Math.Min(written, uint.MaxValue);
    }

    /// <summary>
    /// Copies the readable buffers, in order, into the writable ones (scatter-gather on both sides).
    /// Each piece is a memmove, so overlapping source and destination cannot corrupt the VMM.
    /// </summary>
    private uint Copy(ReadOnlySpan<VirtqBuffer> chain, ulong total)
    {
        int r = 0, w = 0;
        ulong rOff = 0, wOff = 0;
        while (true)
        {
            while (r < chain.Length && (chain[r].DeviceWritable || rOff == chain[r].Length)) { r++; rOff = 0; }
            while (w < chain.Length && (!chain[w].DeviceWritable || wOff == chain[w].Length)) { w++; wOff = 0; }
            if (r >= chain.Length || w >= chain.Length)
                break;
            int n = (int)Math.Min(chain[r].Length - rOff, chain[w].Length - wOff);
            Memory.Map(chain[r].Address + rOff, n).CopyTo(Memory.Map(chain[w].Address + wOff, n));
            rOff += (ulong)n;
            wOff += (ulong)n;
        }
        return (uint)Math.Min(total, uint.MaxValue);
    }
}

/// <summary>What a snapshot of the device holds (QEMU's RFC migrates the two leak-queue fields too).</summary>
public sealed record VirtioRngDeviceState(VirtioTransportState Transport, int ActiveLeakQueue, int SignaledLeakQueue);
