using ForkNotify;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Tunnel.Device;

/// <summary>How a <see cref="TunnelDevice"/> protects its sessions against VM snapshot, restore and clone.</summary>
public enum ForkGuardMode
{
    /// <summary>No protection (the negative control).</summary>
    Off,

    /// <summary>
    /// Push: on PostVmFork, HibernationPrepare and SuspendPrepare clear every session (keys
    /// zeroed); after a fork start new handshakes at once. Racy: a clone runs, and may send, before
    /// the notification arrives.
    /// </summary>
    Notifier,

    /// <summary>
    /// Pull: every keypair records the pull counter; the send path checks it between encrypting
    /// and transmitting and drops what a stale keypair encrypted. Closes the race; rekeys lazily.
    /// </summary>
    HotPath,

    /// <summary>Both: the hot path closes the race, the notifier rekeys proactively.</summary>
    Both,
}

/// <summary>
/// Wires a <see cref="TunnelDevice"/> to a guest kernel's fork signals (issue 6). The notifier
/// side is the kernel's wg_pm_notification and wg_vm_notification in one callback, stronger than
/// either: it zeroes every keypair (not only the current ones) on a fork too, and rekeys at once
/// instead of waiting for the next packet. The hot-path side hands the pull counter to the
/// device's send path. A generation watcher tells an overseer when the device has handled a fork.
/// </summary>
public sealed class ForkGuard : IDisposable
{
    private readonly TunnelDevice _device;
    private readonly ForkKernel _kernel;
    private readonly ILogger _logger;
    private readonly NotifierBlock? _block;
    private readonly GenerationWatcher? _watcher;
    private readonly IGenerationCounter? _pullCounter;
    private long _sessionsCleared;
    private int _disposed;

    /// <param name="pullCounter">Required for <see cref="ForkGuardMode.HotPath"/> and
    /// <see cref="ForkGuardMode.Both"/>; it should be a counter the hypervisor moves before the
    /// guest resumes (vmgenid CTRA, virtio-rng copy-on-leak word, VMClock).</param>
    /// <exception cref="ArgumentException">A hot-path mode without a pull counter.</exception>
    public ForkGuard(TunnelDevice device, ForkKernel kernel, ForkGuardMode mode,
        IGenerationCounter? pullCounter = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(kernel);
        if (!Enum.IsDefined(mode))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown fork guard mode.");
        bool hotPath = mode is ForkGuardMode.HotPath or ForkGuardMode.Both;
        if (hotPath && pullCounter is null)
            throw new ArgumentException($"Fork guard mode {mode} needs a pull counter.", nameof(pullCounter));
        _device = device;
        _kernel = kernel;
        _logger = logger ?? NullLogger.Instance;
        Mode = mode;
        if (mode == ForkGuardMode.Off)
            return;

        if (hotPath)
        {
            _pullCounter = pullCounter;
            device.HotPathCounter = pullCounter;
            // A device restored from a snapshot already carries the generation its randomness was
            // reseeded for (the guest's memory); the clone's counter has moved past it, and the
            // gate must stay shut until the clone's own notification. Only a device that never
            // had a gate starts from the counter's current value.
            if (!device.ReseedGateEnabled)
                device.MarkRandomReseeded(pullCounter!.Read());
        }
        _watcher = kernel.Watchers.Register(device.Name);
        // HotPath alone subscribes too: to acknowledge (from the moment the pull counter moved no
        // stale keypair can transmit), and to learn when the randomness has been reseeded, so the
        // handshakes the hot path held back can go (see TunnelDevice.MarkRandomReseeded).
        _block = new NotifierBlock(OnPmEvent) { Name = $"fork guard ({device.Name})" };
        int rc = kernel.Pm.Register(_block);
        if (rc != 0)
        {
            _watcher.Dispose();
            throw new InvalidOperationException($"register_pm_notifier failed: {rc}");
        }
    }

    public ForkGuardMode Mode { get; }

    /// <summary>The last generation this device acknowledged (0 in <see cref="ForkGuardMode.Off"/>).</summary>
    public ulong HandledGeneration => _watcher?.HandledGeneration ?? 0;

    /// <summary>Times an event made the guard clear every session.</summary>
    public long SessionsCleared => Interlocked.Read(ref _sessionsCleared);

    /// <summary>The device's watcher (null in <see cref="ForkGuardMode.Off"/>).</summary>
    public GenerationWatcher? Watcher => _watcher;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (_block is not null)
            _kernel.Pm.Unregister(_block);
        _watcher?.Dispose();
        if (_pullCounter is not null)
        {
            _device.HotPathCounter = null;
            _device.ClearReseedGate();
        }
    }

    /// <summary>The PM chain callback. Never throws (a throwing block would count as a veto).</summary>
    private NotifyResult OnPmEvent(NotifierBlock block, ulong action, object? data)
    {
        try
        {
            switch ((PmEvent)action)
            {
                case PmEvent.PostVmFork:
                    // The fork path reseeds the kernel's generator before it calls the chain, so
                    // from here on handshakes are fresh in every clone.
                    if (_pullCounter is not null)
                        _device.MarkRandomReseeded(_pullCounter.Read());
                    if (Mode == ForkGuardMode.HotPath)
                        SendDeferredHandshakes();
                    else
                        ClearSessions(rekey: true);
                    break;
                case PmEvent.HibernationPrepare:
                case PmEvent.SuspendPrepare:
                    // The image (or RAM) may be resumed more than once: no key may survive it. After
                    // resume, wait for traffic as the kernel does: a suspended laptop needs no session.
                    if (Mode != ForkGuardMode.HotPath)
                        ClearSessions(rekey: false);
                    break;
                default:
                    return NotifyResult.Done;
            }
            Acknowledge();
            return NotifyResult.Ok;
        }
        catch (Exception e)
        {
            _logger.LogError(e, "{Device}: fork guard failed to handle PM event {Action}", _device.Name, action);
            return NotifyResult.Done;
        }
    }

    private void ClearSessions(bool rekey)
    {
        IReadOnlyList<Peer> peers = _device.Peers;
        // Who had something to lose, before it is gone.
        var hadSession = new bool[peers.Count];
        for (int i = 0; i < peers.Count; i++)
            hadSession[i] = peers[i].HasSession || peers[i].HandshakeDeferred;

        _device.ClearAllSessions();
        Interlocked.Increment(ref _sessionsCleared);
        _logger.LogInformation("{Device}: cleared every session ({Reason})", _device.Name,
            rekey ? "VM fork" : "suspend/hibernate");
        if (!rekey)
            return;

        // New handshakes at once, with the reseeded randomness: the kernel would wait for the
        // next packet, leaving the tunnel dead until then.
        for (int i = 0; i < peers.Count; i++)
        {
            if (!hadSession[i])
                continue;
            peers[i].ResetLastSentHandshake();
            peers[i].InitiateHandshake();
        }
    }

    /// <summary>HotPath alone: the handshakes the hot path wanted while the randomness was stale.</summary>
    private void SendDeferredHandshakes()
    {
        foreach (Peer peer in _device.Peers)
        {
            if (!peer.HandshakeDeferred)
                continue;
            peer.ResetLastSentHandshake();
            peer.InitiateHandshake();
        }
    }

    private void Acknowledge()
    {
        // Only the current generation can be acknowledged; if another fork landed meanwhile, its
        // own notification acknowledges it.
        _watcher?.Acknowledge(_kernel.Watchers.CurrentGeneration);
    }
}
