using ForkNotify;

namespace VmDevices;

/// <summary>
/// The guest's virtio-rng driver (drivers/char/hw_random/virtio-rng.c plus Chalios' leak RFC).
/// It negotiates VIRTIO_F_VERSION_1 and, when offered, VIRTIO_RNG_F_LEAK; serves entropy reads on
/// queue 0 (polled: it sets NO_INTERRUPT there and reaps the used ring after the kick); and keeps
/// two leak commands armed on the active leak queue:
/// <list type="bullet">
/// <item>fill-on-leak of 32 bytes, which it feeds to <see cref="ForkKernel.AddVmForkRandomness"/>
/// when the leak interrupt arrives;</item>
/// <item>copy-on-leak from a "next generation" word into the generation word exposed as
/// <see cref="LeakGeneration"/>, so the new value is in memory before the guest resumes.</item>
/// </list>
/// At the interrupt it swaps to the other leak queue and re-arms there. Between a leak and that
/// interrupt nothing is armed on the newly active queue: a second leak in that window completes
/// nothing (the device counts it) and the counter only moves when the driver catches up.
/// </summary>
public sealed class VirtioRngDriver
{
    public const int EntropyBufferSize = 64;
    public const int FillOnLeakSize = 32;

    /// <summary>The generation word starts here, so 0 can mean "never read".</summary>
    public const ulong InitialLeakGeneration = 1;

    private const ushort TokenEntropy = 1;
    private const ushort TokenFill = 2;
    private const ushort TokenCopy = 3;
    private const ulong PageSize = 4096;

    private readonly ForkKernel _kernel;
    private readonly GuestMemory _memory;
    private readonly VirtioRngDevice _device;
    private readonly InterruptLine _irq;
    private readonly SimulationTrace? _trace;
    private readonly string _name;
    private readonly DriverVirtqueue?[] _queues = new DriverVirtqueue?[3];
    private VirtioRngDriverLayout _layout = new();
    private int _activeLeakQueue = VirtioRngDevice.LeakQueue1;

    public VirtioRngDriver(ForkKernel kernel, GuestMemory memory, VirtioRngDevice device, InterruptLine irq,
        SimulationTrace? trace = null, string name = "virtio_rng")
    {
        _kernel = kernel;
        _memory = memory;
        _device = device;
        _irq = irq;
        _trace = trace;
        _name = name;
    }

    public bool Probed { get; private set; }

    public bool LeakNegotiated { get; private set; }

    /// <summary>The copy-on-leak target: a pull counter, null without the leak feature.</summary>
    public GuestCounterWord? LeakGeneration { get; private set; }

    /// <summary>The leak queue the driver believes active (where its commands are armed).</summary>
    public int ActiveLeakQueue => _activeLeakQueue;

    /// <summary>Leak interrupts that found a completed command on the active queue.</summary>
    public long LeakEventsHandled { get; private set; }

    /// <summary>True once the device reported DEVICE_NEEDS_RESET or returned a bad used entry.</summary>
    public bool Broken { get; private set; }

    /// <summary>
    /// Device initialisation (virtio 1.x 3.1.1): reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK,
    /// queues, DRIVER_OK; then arms the leak commands. False when the device or the heap says no.
    /// </summary>
    public bool Probe(GuestHeap heap, ushort queueSize = 8)
    {
        _device.WriteStatus(VirtioStatus.Reset);
        var status = VirtioStatus.Acknowledge | VirtioStatus.Driver;
        _device.WriteStatus(status);
        ulong wanted = VirtioFeatures.Version1 | VirtioRngDevice.FeatureLeak;
        _device.WriteDriverFeatures(_device.DeviceFeatures & wanted);
        _device.WriteStatus(status |= VirtioStatus.FeaturesOk);
        if ((_device.Status & VirtioStatus.FeaturesOk) == 0)
            return Abandon("device refused our features");
        LeakNegotiated = (_device.DriverFeatures & VirtioRngDevice.FeatureLeak) != 0;

        ushort size = Math.Min(queueSize, _device.QueueNumMax);
        int queueCount = LeakNegotiated ? 3 : 1;
        ulong entropyBuffer = heap.Allocate(EntropyBufferSize, 8);
        if (!Virtq.IsValidSize(size))
            return Abandon($"queue size {size} is not a power of two");
        var rings = new VirtqAddresses[queueCount];
        var queues = new DriverVirtqueue[queueCount];
        for (int q = 0; q < queueCount; q++)
        {
            if (DriverVirtqueue.Allocate(heap, size) is not { } a)
                return Abandon("guest heap exhausted");
            // Rings are initialised (zeroed) before the device is told where they are.
            queues[q] = new DriverVirtqueue(_memory, a, $"{_name} vq{q}");
            if (!_device.ConfigureQueue(q, a))
                return Abandon($"queue {q} set-up refused");
            rings[q] = a;
        }
        var layout = new VirtioRngDriverLayout { Rings = rings, EntropyBuffer = entropyBuffer };
        if (LeakNegotiated)
        {
            layout = layout with
            {
                // The generation word gets a page of its own: in Linux it is what user space mmaps.
                GenerationWord = heap.Allocate(PageSize, PageSize),
                NextGeneration1 = heap.Allocate(8, 8),
                NextGeneration2 = heap.Allocate(8, 8),
                FillBuffer1 = heap.Allocate(FillOnLeakSize, 8),
                FillBuffer2 = heap.Allocate(FillOnLeakSize, 8),
            };
        }
        if (layout.HasNullAllocation(LeakNegotiated))
            return Abandon("guest heap exhausted");
        _layout = layout;
        queues.CopyTo(_queues, 0);
        _queues[0]!.SuppressInterrupts(true);

        _device.WriteStatus(status | VirtioStatus.DriverOk);
        _irq.Connect(OnInterrupt);
        Probed = true;
        if (LeakNegotiated)
        {
            _memory.TryWriteUInt64(_layout.GenerationWord, InitialLeakGeneration, _name);
            LeakGeneration = GuestCounterWord.Map64(_memory, _layout.GenerationWord);
            _activeLeakQueue = VirtioRngDevice.LeakQueue1;
            Arm(_activeLeakQueue);
        }
        _trace?.Record(_name, $"probed, leak feature {(LeakNegotiated ? "on" : "off")}");
        return true;
    }

    /// <summary>
    /// hwrng read: asks the device for up to <see cref="EntropyBufferSize"/> bytes and returns how
    /// many it got (0 when the device is broken or did not answer).
    /// </summary>
    public int Read(Span<byte> destination)
    {
        if (!Probed || Broken || _queues[0] is not { } q)
            return 0;
        int n = Math.Min(destination.Length, EntropyBufferSize);
        if (n == 0 || !q.TryAdd([new VirtqBuffer(_layout.EntropyBuffer, (uint)n, DeviceWritable: true)], TokenEntropy, out _))
            return 0;
        _device.QueueNotify(VirtioRngDevice.RequestQueue);
        while (q.TryGetUsed(out ushort token, out uint length))
        {
            if (token != TokenEntropy)
                continue;
            int got = (int)Math.Min(length, (uint)n);
            _memory.TryRead(_layout.EntropyBuffer, destination[..got], _name);
            return got;
        }
        return 0;
    }

    private void OnInterrupt(uint line)
    {
        VirtioInterrupt isr = _device.ReadInterruptStatus();
        if ((isr & VirtioInterrupt.ConfigChange) != 0 && (_device.Status & VirtioStatus.DeviceNeedsReset) != 0)
        {
            Broken = true;
            _trace?.Record(_name, "device needs reset");
        }
        if ((isr & VirtioInterrupt.UsedBuffer) != 0 && LeakNegotiated && !Broken)
            HandleLeakQueues();
    }

    /// <summary>
    /// entropy_leak_detected(): a completed command on the active queue means a leak happened.
    /// Feed the fill bytes to the fork path, swap queues, re-arm on the new active one.
    /// </summary>
    private void HandleLeakQueues()
    {
        int active = _activeLeakQueue;
        int other = active == VirtioRngDevice.LeakQueue1 ? VirtioRngDevice.LeakQueue2 : VirtioRngDevice.LeakQueue1;
        ReapQuietly(other);
        bool leaked = false, filled = false;
        while (_queues[active]!.TryGetUsed(out ushort token, out uint length))
        {
            leaked = true;
            filled |= token == TokenFill && length == FillOnLeakSize;
        }
        if (_queues[active]!.Broken)
            Broken = true;
        if (!leaked)
            return;
        LeakEventsHandled++;
        _activeLeakQueue = other;
        _trace?.Record(_name, $"leak on leakq.{active}: generation word {LeakGeneration?.Read()}, re-arming on leakq.{other}");
        Span<byte> bytes = stackalloc byte[FillOnLeakSize];
        if (filled)
        {
            _memory.TryRead(FillBuffer(active), bytes, _name);
            _memory.TryClear(FillBuffer(active), FillOnLeakSize, _name);
        }
        // Re-arm first: until then a further leak would find nothing to complete.
        Arm(other);
        if (filled)
        {
            _kernel.AddVmForkRandomness(bytes);
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private void ReapQuietly(int queue)
    {
        while (_queues[queue]!.TryGetUsed(out _, out _)) { }
    }

    /// <summary>Arms fill-on-leak and copy-on-leak (next = current + 1) on <paramref name="queue"/>.</summary>
    private void Arm(int queue)
    {
        var q = _queues[queue]!;
        ulong next = NextGeneration(queue);
        _memory.TryWriteUInt64(next, (LeakGeneration?.Read() ?? 0) + 1, _name);
        ulong fill = FillBuffer(queue);
        bool ok = q.TryAdd([new VirtqBuffer(fill, FillOnLeakSize, DeviceWritable: true)], TokenFill, out _)
                  & q.TryAdd([new VirtqBuffer(next, 8, DeviceWritable: false),
                              new VirtqBuffer(_layout.GenerationWord, 8, DeviceWritable: true)], TokenCopy, out _);
        if (!ok)
            _trace?.Record(_name, $"could not arm leakq.{queue}");
        _device.QueueNotify(queue);
    }

    private ulong FillBuffer(int queue) => queue == VirtioRngDevice.LeakQueue1 ? _layout.FillBuffer1 : _layout.FillBuffer2;

    private ulong NextGeneration(int queue) => queue == VirtioRngDevice.LeakQueue1 ? _layout.NextGeneration1 : _layout.NextGeneration2;

    private bool Abandon(string why)
    {
        _device.WriteStatus(_device.Status | VirtioStatus.Failed);
        _trace?.Record(_name, $"probe failed: {why}");
        return false;
    }

    public VirtioRngDriverState Capture() =>
        new(Probed, LeakNegotiated, Broken, _activeLeakQueue, LeakEventsHandled, _layout,
            Array.ConvertAll(_queues, q => q?.Capture()));

    /// <summary>Puts a captured driver back over restored guest memory and reconnects its interrupt.</summary>
    public void Restore(VirtioRngDriverState s)
    {
        Probed = s.Probed;
        LeakNegotiated = s.LeakNegotiated;
        Broken = s.Broken;
        _activeLeakQueue = s.ActiveLeakQueue;
        LeakEventsHandled = s.LeakEventsHandled;
        _layout = s.Layout;
        for (int q = 0; q < _queues.Length; q++)
            _queues[q] = s.Queues[q] is { } qs && q < _layout.Rings.Count
                ? DriverVirtqueue.Restore(_memory, _layout.Rings[q], qs, $"{_name} vq{q}")
                : null;
        LeakGeneration = LeakNegotiated ? GuestCounterWord.Map64(_memory, _layout.GenerationWord) : null;
        if (Probed)
            _irq.Connect(OnInterrupt);
    }
}

/// <summary>Guest-physical addresses the driver allocated at probe.</summary>
public sealed record VirtioRngDriverLayout
{
    public IReadOnlyList<VirtqAddresses> Rings { get; init; } = [];
    public ulong EntropyBuffer { get; init; }
    public ulong GenerationWord { get; init; }
    public ulong NextGeneration1 { get; init; }
    public ulong NextGeneration2 { get; init; }
    public ulong FillBuffer1 { get; init; }
    public ulong FillBuffer2 { get; init; }

    internal bool HasNullAllocation(bool leak) =>
        EntropyBuffer == 0 || (leak && (GenerationWord == 0 || NextGeneration1 == 0 || NextGeneration2 == 0
                                        || FillBuffer1 == 0 || FillBuffer2 == 0));
}

/// <summary>The driver's kernel-memory state, as a snapshot copies it.</summary>
public sealed record VirtioRngDriverState(
    bool Probed, bool LeakNegotiated, bool Broken, int ActiveLeakQueue, long LeakEventsHandled,
    VirtioRngDriverLayout Layout, DriverVirtqueueState?[] Queues);
