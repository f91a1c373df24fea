using ForkNotify;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Tunnel.Device;

/// <summary>
/// Wires a <see cref="TunnelDevice"/> to a guest kernel's fork signals (issue 6). The notifier
/// side is the kernel's wg_pm_notification and wg_vm_notification in one callback, stronger than
/// either: it zeroes every keypair (not only the current ones) on a fork too, and rekeys without
/// waiting for the next packet: the zeroing is immediate, on the notifier's thread; the rekey is
/// handed to the device's <see cref="RekeyPacer"/>, paced on the host's timer thread. The hot-path side hands the pull counter to the
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
    private long _heldForks;
    private volatile bool _holding;
    private int _disposed;

    /// <param name="pullCounter">Required for <see cref="ForkGuardMode.HotPath"/> and
    /// <see cref="ForkGuardMode.Both"/>; it should be a counter the hypervisor moves before the
    /// guest resumes (vmgenid CTRA, virtio-rng copy-on-leak word, VMClock).</param>
    /// <param name="startGeneration">The pull counter as the caller read it at start-up (one read
    /// for the whole start); null: the guard reads it once.</param>
    /// <exception cref="ArgumentException">A hot-path mode without a pull counter.</exception>
    public ForkGuard(TunnelDevice device, ForkKernel kernel, ForkGuardMode mode,
        IGenerationCounter? pullCounter = null, ILogger? logger = null, ulong? startGeneration = null)
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
            device.Fork.Counter = pullCounter;
            // The fork path reads it before each reseed and hands the value down the chain.
            kernel.PullCounter ??= pullCounter;
            // A device restored from a snapshot already carries the generation its randomness was
            // reseeded for (the guest's memory); the clone's counter has moved past it, and the
            // gate must stay shut until the clone's own notification. Only a device that never
            // had a gate starts from the counter's value at start-up.
            if (!device.Fork.GateEnabled)
                device.Fork.MarkRandomReseeded(startGeneration ?? pullCounter!.Read());
        }
        _watcher = kernel.Watchers.Register(device.Name);
        // HotPath alone subscribes too: to acknowledge (from the moment the pull counter moved no
        // stale keypair can transmit), and to learn when the randomness has been reseeded, so the
        // handshakes the hot path held back can go (see ForkSeam.MarkRandomReseeded).
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

    /// <summary>
    /// True from a fork whose reseed took in no input unique to this clone until one arrives:
    /// handshakes are held (sibling clones may hold the same generator). Shown in the UAPI.
    /// </summary>
    public bool HoldingHandshakes => _holding;

    /// <summary>Forks after which handshakes were held for want of a clone-unique input.</summary>
    public long HeldForks => Interlocked.Read(ref _heldForks);

    /// <summary>
    /// TEST-ONLY negative control: when false, every fork counts as clone-unique (the rule of issue
    /// 14 off), so the gate opens after a reseed from inputs every sibling clone shares.
    /// </summary>
    public bool RequireCloneUniqueInput { get; init; } = true;

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
            _device.Fork.Counter = null;
            _device.Fork.ClearGate();
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
                    OnVmFork(data as VmForkNotice);
                    break;
                case PmEvent.HibernationPrepare:
                case PmEvent.SuspendPrepare:
                    // The image (or RAM) may be resumed more than once, and a hibernation image
                    // resumed twice moves no VM counter: no key may survive it, whatever the mode.
                    // After resume, wait for traffic as the kernel does.
                    ClearSessions(rekey: false, keepMadeAt: null);
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

    /// <summary>
    /// A fork: the reseed gate opens for the generation the reseed was for, and only if the reseed
    /// took in an input unique to this clone; clearing (Notifier, Both) happens either way.
    /// </summary>
    private void OnVmFork(VmForkNotice? notice)
    {
        // Without a notice (a caller other than the kernel's fork path) nothing proves the reseed.
        bool unique = notice is { CloneUnique: true } || (!RequireCloneUniqueInput && notice is not null);
        if (unique)
        {
            if (_pullCounter is not null)
                _device.Fork.MarkRandomReseeded(notice!.PullGeneration);
            _device.Fork.ReleaseHandshakes();
            if (_holding)
                _logger.LogInformation("{Device}: clone-unique input from {Source}: handshakes released",
                    _device.Name, notice!.Source);
            _holding = false;
        }
        else
        {
            _device.Fork.HoldHandshakes();
            if (!_holding)
                Interlocked.Increment(ref _heldForks);
            _holding = true;
            _logger.LogWarning("{Device}: VM fork ({Source}) reseeded from nothing unique to this clone: "
                + "handshakes held until /dev/hwrng, the kernel's fork reseed or a new vmgenid ID", _device.Name,
                notice?.Source ?? "unknown");
        }
        if (Mode != ForkGuardMode.HotPath)
            ClearSessions(rekey: true, keepMadeAt: unique && _pullCounter is not null ? notice!.PullGeneration : null);
        // What the gate held back (HotPath's lazy rekey; any mode's handshakes held for a unique input).
        if (unique)
            SendDeferredHandshakes();
    }

    /// <param name="keepMadeAt">With a pull counter (Both): its value now. Sessions started at it
    /// were made after this VM's own reseed and are kept: a fork is often signalled twice (vmgenid,
    /// then the virtio-rng leak), and the second signal must not throw away the handshake the
    /// first one started. Without a pull counter a second signal cannot be told from a new fork,
    /// so everything goes.</param>
    private void ClearSessions(bool rekey, ulong? keepMadeAt)
    {
        var rekeyPeers = new List<Peer>();
        // One section around every peer's retirement: the keypairs are reclaimed together, with
        // one membarrier(2), as it ends (TunnelDevice.ClearAllSessions does the same). Outside a
        // section each retired keypair pays its own process-wide barrier: 100,000 of them were
        // most of a 0.5 s notification at 100,000 peers.
        using (_device.Rcu.ReadLock())
        {
            foreach (Peer peer in _device.Peers)
            {
                if (keepMadeAt is { } generation && peer.SessionMadeAt(generation))
                    continue;
                // Who had something to lose, before it is gone.
                if (rekey && (peer.HasSession || peer.HandshakeDeferred))
                    rekeyPeers.Add(peer);
                peer.ClearSessions();
                // The session is gone, so the REKEY_TIMEOUT wait for an answer to the last
                // initiation is moot: the next one may leave as soon as the responder will take it.
                peer.ResetLastSentHandshake();
            }
        }
        Interlocked.Increment(ref _sessionsCleared);
        _logger.LogInformation("{Device}: cleared every session ({Reason})", _device.Name,
            rekey ? "VM fork" : "suspend/hibernate");

        // New handshakes with the reseeded randomness (the kernel would wait for the next packet,
        // leaving the tunnel dead until then), paced from the host's timer thread, not here with
        // the chain's lock held: one at a time, peers with traffic first. A packet meanwhile
        // starts its peer's handshake at once.
        _device.QueueRekey(rekeyPeers);
    }

    /// <summary>The handshakes wanted while the randomness was stale or not yet clone-unique.</summary>
    private void SendDeferredHandshakes()
    {
        var deferred = new List<Peer>();
        foreach (Peer peer in _device.Peers)
        {
            if (!peer.HandshakeDeferred)
                continue;
            peer.ResetLastSentHandshake();
            deferred.Add(peer);
        }
        _device.QueueRekey(deferred);
    }

    private void Acknowledge()
    {
        // Only the current generation can be acknowledged; if another fork landed meanwhile, its
        // own notification acknowledges it.
        _watcher?.Acknowledge(_kernel.Watchers.CurrentGeneration);
    }
}
